// manifest.json of an artifacts folder, read and checked as the Python
// runtime's exporters.artifacts.load_manifest does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace liteasr::detail {

/// liteasr_export.core.decoding.DecodingOptions (as manifest.json records them:
/// without timestamps; `with_timestamps()` derives the timestamp mode)
struct DecodingOptions {
  std::vector<int64_t> prompt;
  int64_t eot = 0;
  std::vector<int64_t> suppress;
  std::vector<int64_t> suppress_begin;
  int64_t max_new_tokens = 224;
  int64_t sot = -1;              // -1: unknown (no no-speech probability)
  int64_t no_speech = -1;        // <|nospeech|>, -1: none
  int64_t no_timestamps = -1;    // <|notimestamps|>
  int64_t timestamp_begin = -1;  // <|0.00|>
  bool timestamps = false;       // apply the timestamp rules
  int64_t max_initial_timestamp_index = 50;  // -1: no limit
};

struct Manifest {
  std::filesystem::path root;
  std::string name;
  int64_t n_mels = 0;
  int64_t decoder_layers = 0;
  int64_t decoder_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t n_frames = 3000;  // mel frames per 30 s window
  std::filesystem::path frontend_graph;
  std::filesystem::path encoder_graph;
  std::filesystem::path decoder_graph;
  std::filesystem::path tokenizer;
  DecodingOptions decoding;
  /// the "audio_context" section's default: "auto" for an export tuned for
  /// trimmed contexts, else (and without the section) "full"
  std::string default_audio_context = "full";
  /// what the runtime loads, relative to root (graphs, their weights, tokenizer.json)
  std::vector<std::string> loaded_files;
  /// the manifest's sha256 section (empty when it has none)
  std::map<std::string, std::string> sha256;
};

/// Throws liteasr::Error when the folder, the manifest or a file it names is
/// missing, or the manifest lacks what this runtime needs.
Manifest load_manifest(const std::filesystem::path& artifacts_dir);

}  // namespace liteasr::detail
