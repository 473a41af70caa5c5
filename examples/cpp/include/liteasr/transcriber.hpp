// liteasr::Transcriber: speech to text from an artifacts folder written by
// liteasr-export (manifest.json, frontend.onnx, encoder.onnx, decoder.onnx,
// tokenizer.json), with ONNX Runtime's C++ API.
//
//   liteasr::Transcriber t("out/tiny.en");
//   std::string text = t.transcribe(liteasr::read_wav("audio.wav"));
//
// The audio frontend runs inside frontend.onnx, the greedy loop and its
// suppression rules are those of the Python toolchain
// (liteasr_export/decoding.py), and audio longer than 30 s is cut into
// windows at the quietest 20 ms of each window's last 5 s, as
// liteasr_export.frontend.split_windows does. The header is free of ONNX
// Runtime and JSON types; the program links libonnxruntime.
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
};

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
