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
// last 5 s, as liteasr_export.core.frontend.split_windows does. Beam search is
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
};

/// A stretch of speech with its text (seconds from the start of the audio).
struct Segment {
  double start = 0.0;
  double end = 0.0;
  std::string text;
};

/// How one 30 s window was decoded.
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
  /// log-mel `features`, laid out (batch, n_mels, 3000) row-major.
  std::vector<std::vector<int64_t>> transcribe_features(const std::vector<float>& features, int64_t batch);

  /// Text of token ids (byte-level BPE decoding of the exported vocabulary).
  std::string detokenize(const std::vector<int64_t>& ids) const;

  /// The model name recorded in manifest.json.
  const std::string& name() const;
  int64_t n_mels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace liteasr
