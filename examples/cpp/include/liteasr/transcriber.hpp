// liteasr::Transcriber: speech to text from an artifacts folder written by
// liteasr-export (manifest.json, frontend.onnx, encoder.onnx, decoder.onnx,
// tokenizer.json), with ONNX Runtime's C++ API.
//
//   liteasr::Transcriber t("out/tiny.en");
//   std::string text = t.transcribe(liteasr::read_wav("audio.wav"));
//
// The audio frontend runs inside frontend.onnx; decoding follows the Python
// toolchain (liteasr_export/decoding.py): greedy search with openai-whisper's
// suppression and timestamp rules, and the temperature fallback. With
// timestamps (the default) long audio moves on by its last complete segment;
// without, it is cut into windows at the quietest 20 ms of each window's
// last 5 s, as liteasr_export.core.frontend.split_windows does. An audio
// context (TranscriberOptions::audio_context) encodes fewer than 3000 mel
// frames per window, as liteasr_export.core.windowed does. Beam search is
// not implemented here (the Python runtimes have it). The header is free of
// ONNX Runtime and JSON types; the program links libonnxruntime.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "liteasr/error.hpp"
#include "liteasr/wav.hpp"

namespace liteasr {

/// Mel frames of a whole 30 s window (100 per second).
constexpr int64_t kFullContextFrames = 3000;

/// How much audio a window holds and the encoder sees (the Python
/// toolchain's TranscribeOptions.audio_context, liteasr-transcribe
/// --audio-context).
struct AudioContext {
  enum class Mode {
    /// the artifacts' default: manifest.json's "audio_context" section says
    /// "auto" for an export tuned for trimmed contexts (--context-tune), else
    /// "full" (also when it has no such section)
    manifest,
    /// 30 s windows padded to 3000 mel frames (Whisper's way)
    full,
    /// 30 s windows, each encoded at its audio plus 1 s, rounded up to the
    /// next of 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000
    /// frames; windows of one length are encoded together
    automatic,
    /// windows of at most `frames` mel frames, each encoded at `frames`: long
    /// audio is cut into more, shorter windows (no audio is dropped)
    frames,
  };
  Mode mode = Mode::manifest;
  /// Mode::frames: mel frames per window (100 per second), even, >= 2; more than 3000 means 3000
  int64_t frames = kFullContextFrames;
};

/// An audio context as a person writes it: `full`, `auto`, seconds (`10`,
/// `7.5s`) or mel frames (`1000f`), case-insensitive; a length is rounded up
/// to an even number of frames and kept within 2 to 3000. Throws
/// liteasr::Error on anything else (`0`, `abc`, `-3s`).
AudioContext parse_audio_context(const std::string& text);

struct TranscriberOptions {
  /// ONNX Runtime intra-op threads per session; 0 = ONNX Runtime's default
  int threads = 0;
  /// windows of long audio encoded and decoded together (as the Python runtime)
  int batch_size = 8;
  /// check every loaded file's sha256 against manifest.json (fast after the first check)
  bool verify = true;
  /// decode timestamps: segments, and long audio moves on by its last complete segment
  bool timestamps = true;
  /// temperature fallback and silence skipping, with openai-whisper's thresholds
  bool fallback = true;
  /// samples per window at temperatures above 0, and their seed
  int best_of = 5;
  uint64_t seed = 0;
  /// how much audio each window holds and the encoder sees (default: the
  /// manifest's). On a trimmed context, a window whose first decode fails the
  /// fallback's test (a loop, the token limit, too unlikely) is decoded again
  /// on the full 30 s before the temperature fallback starts (not without the
  /// fallback: then each window is decoded once). A context under 30 s needs
  /// an encoder.onnx whose frames axis is dynamic (exports since it is).
  AudioContext audio_context;
};

/// A stretch of speech with its text (seconds from the start of the audio).
struct Segment {
  double start = 0.0;
  double end = 0.0;
  std::string text;
};

/// How one window was decoded.
struct WindowReport {
  double start = 0.0;
  double end = 0.0;
  float temperature = 0.0f;   // of the result kept
  bool fallback = false;      // decoded at more than one temperature
  std::string outcome;        // ok, no-speech, fallback-exhausted, dropped-repetitive
  double avg_logprob = 0.0;
  double compression_ratio = 0.0;
  double no_speech_prob = 0.0;
  std::vector<float> temperatures_tried;
  int64_t audio_context = kFullContextFrames;  // mel frames the kept decode was encoded with
  bool full_context_retry = false;             // decoded again on 30 s after the trimmed context failed
};

struct Transcript {
  std::string text;
  double duration = 0.0;  // seconds
  std::vector<Segment> segments;
  std::vector<WindowReport> windows;
};

/// The transcript as JSON (the fields of liteasr-transcribe --output-format json).
std::string to_json(const Transcript& transcript, const std::string& audio);
/// The segments as SRT subtitles.
std::string to_srt(const Transcript& transcript);

class Transcriber {
 public:
  /// Loads and checks manifest.json and the graphs it names (their sha256 too,
  /// unless options.verify is false); throws liteasr::Error.
  explicit Transcriber(const std::string& artifacts_dir, TranscriberOptions options = {});
  ~Transcriber();
  Transcriber(Transcriber&&) noexcept;
  Transcriber& operator=(Transcriber&&) noexcept;
  Transcriber(const Transcriber&) = delete;
  Transcriber& operator=(const Transcriber&) = delete;

  /// Text of mono 16 kHz float samples in [-1, 1], of any length.
  std::string transcribe(const std::vector<float>& pcm_16k);

  /// Text, segments and a report per window of mono 16 kHz samples.
  Transcript transcribe_detailed(const std::vector<float>& pcm_16k);

  /// Greedy token ids (without prompt and <|endoftext|>) per window of
  /// log-mel `features`, laid out (batch, n_mels, 3000) row-major; under an
  /// audio context of N frames their first N frames are encoded (`auto` and
  /// `full`: all 3000), once, with no retry.
  std::vector<std::vector<int64_t>> transcribe_features(const std::vector<float>& features, int64_t batch);

  /// Text of token ids (byte-level BPE decoding of the exported vocabulary).
  std::string detokenize(const std::vector<int64_t>& ids) const;

  /// The model name recorded in manifest.json.
  const std::string& name() const;
  int64_t n_mels() const;
  /// The audio context in use (Mode::manifest resolved to the manifest's
  /// default; Mode::frames holds at most 3000 frames).
  const AudioContext& audio_context() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace liteasr
