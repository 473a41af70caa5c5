// The greedy loop of liteasr_export/decoding.py (greedy_decode), step for
// step: same suppression (every step: `suppress`; first step: also
// `suppress_begin`), argmax with the first maximum winning, finished rows
// fed <|endoftext|>, at most max_new_tokens steps.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "manifest.hpp"

namespace liteasr::detail {

/// Feeds `tokens` (batch x n_tokens, row-major) after everything fed before and
/// returns the logits of the last position, (batch x vocab) row-major.
using DecoderStep = std::function<std::vector<float>(const std::vector<int64_t>& tokens, int64_t batch, int64_t n_tokens)>;

/// New tokens of each sequence, without the prompt and without <|endoftext|>.
std::vector<std::vector<int64_t>> greedy_decode(const DecoderStep& step, int64_t batch, const DecodingOptions& options);

}  // namespace liteasr::detail
