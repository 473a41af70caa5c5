// Decoding as liteasr_export/decoding.py does it, without beam search:
// greedy at temperature 0, best-of-N sampling above it, openai-whisper's
// logit rules (suppression, suppressed blanks at the start, timestamp rules),
// the no-speech probability at <|startoftranscript|>, and the temperature
// fallback (compression ratio, average log-probability, no-speech
// thresholds) with the same choices when every temperature fails.
// Sampling draws from std::mt19937_64, not numpy's generator: at
// temperatures above 0 the C++ and Python runtimes draw different samples.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "manifest.hpp"

namespace liteasr::detail {

/// Feeds `tokens` (batch x n_tokens, row-major) after everything fed before and
/// returns the logits of the last position, (batch x vocab) row-major.
using DecoderStep = std::function<std::vector<float>(const std::vector<int64_t>& tokens, int64_t batch, int64_t n_tokens)>;
/// Row i of the batch becomes what row rows[i] was (KV cache and encoder outputs).
using Reorder = std::function<void(const std::vector<int64_t>& rows)>;

struct Decoder {
  DecoderStep step;
  Reorder reorder;  // may be empty where nothing is ever reordered (greedy)
};

/// New tokens of each sequence, without the prompt and without <|endoftext|>.
std::vector<std::vector<int64_t>> greedy_decode(const DecoderStep& step, int64_t batch, const DecodingOptions& options);

/// The options for decoding with timestamps: the prompt without
/// <|notimestamps|>, the timestamp tokens no longer suppressed.
DecodingOptions with_timestamps(const DecodingOptions& options);

/// openai-whisper's logit rules on one row of logits, in place. `history`:
/// the tokens sampled so far; `last_timestamp`: the last timestamp token, or -1.
void apply_rules(float* logits, int64_t vocab, const std::vector<int64_t>& history, int64_t last_timestamp,
                 const DecodingOptions& options);

/// Bytes of `text` over bytes of its zlib compression (a loop compresses well).
double compression_ratio(const std::string& text);

struct Hypothesis {
  std::vector<int64_t> tokens;
  double sum_logprob = 0.0;
  double no_speech_prob = 0.0 / 0.0;  // NaN when unknown
  double avg_logprob() const { return sum_logprob / static_cast<double>(tokens.size() + 1); }
};

/// One decode of `batch` windows: greedy at temperature 0, the best of
/// `best_of` samples above it (`seeds`: one per window).
std::vector<Hypothesis> search(Decoder& decoder, int64_t batch, const DecodingOptions& options, float temperature,
                               int best_of, const std::vector<std::vector<uint64_t>>& seeds);

struct FallbackOptions {
  std::vector<float> temperatures{0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f};
  int best_of = 5;
  double compression_ratio_threshold = 2.4;  // NaN: off
  double logprob_threshold = -1.0;           // NaN: off
  double no_speech_threshold = 0.6;          // NaN: off
  uint64_t seed = 0;
  /// one greedy pass, every window kept (no fallback, no silence skipping)
  static FallbackOptions none();
};

struct WindowDecode {
  std::vector<int64_t> tokens;
  float temperature = 0.0f;
  double avg_logprob = 0.0;
  double compression_ratio = 0.0;
  double no_speech_prob = 0.0;
  std::vector<float> temperatures_tried;
  std::string outcome;  // ok, no-speech, fallback-exhausted, dropped-repetitive
  int64_t audio_context = 3000;     // mel frames the window was encoded with (30 s unless trimmed)
  bool full_context_retry = false;  // decoded again on 30 s after its trimmed context failed
};

/// Decode every window, then again at the next temperature only those that
/// failed a threshold; `make()` gives a fresh decoder over all `batch`
/// windows. `keys`: one number per window for its samples' seeds.
std::vector<WindowDecode> decode_with_fallback(const std::function<Decoder()>& make, int64_t batch,
                                               const DecodingOptions& options, const FallbackOptions& fallback,
                                               const std::function<std::string(const std::vector<int64_t>&)>& text_of,
                                               const std::vector<uint64_t>& keys);

struct TimedTokens {
  double start = 0.0;
  double end = 0.0;
  std::vector<int64_t> tokens;
};

/// Segments of one window decoded with timestamps and how many mel frames
/// to move on (liteasr_export.core.windowed.timestamp_segments).
std::pair<std::vector<TimedTokens>, int64_t> timestamp_segments(const std::vector<int64_t>& tokens,
                                                                int64_t timestamp_begin, double offset,
                                                                int64_t window_frames);

}  // namespace liteasr::detail
