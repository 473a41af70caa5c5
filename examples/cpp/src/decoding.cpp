#include "greedy.hpp"

#include <cmath>
#include <limits>

#include "liteasr/error.hpp"

namespace liteasr::detail {

namespace {

/// numpy's argmax: the first maximum, or the first NaN if there is one.
int64_t argmax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(row[i])) return i;
    if (row[i] > row[best]) best = i;
  }
  return best;
}

}  // namespace

std::vector<std::vector<int64_t>> greedy_decode(const DecoderStep& step, int64_t batch, const DecodingOptions& options) {
  const auto& prompt = options.prompt;
  std::vector<int64_t> tokens;
  for (int64_t b = 0; b < batch; ++b) tokens.insert(tokens.end(), prompt.begin(), prompt.end());
  int64_t n_tokens = static_cast<int64_t>(prompt.size());
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  std::vector<std::vector<int64_t>> outputs(static_cast<size_t>(batch));
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

  for (int64_t index = 0; index < options.max_new_tokens; ++index) {
    std::vector<float> logits = step(tokens, batch, n_tokens);
    const int64_t vocab = static_cast<int64_t>(logits.size()) / batch;
    if (vocab <= 0 || static_cast<int64_t>(logits.size()) != vocab * batch) {
      throw Error("decoder returned " + std::to_string(logits.size()) + " logits for a batch of " + std::to_string(batch),
                  "the decoder graph does not match the manifest: re-export the artifacts folder");
    }
    std::vector<int64_t> next(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) {
      float* row = logits.data() + b * vocab;
      for (int64_t id : options.suppress) {
        if (id < vocab) row[id] = kMinusInf;
      }
      if (index == 0) {
        for (int64_t id : options.suppress_begin) {
          if (id < vocab) row[id] = kMinusInf;
        }
      }
      next[b] = finished[b] ? options.eot : argmax(row, vocab);
    }
    bool all_finished = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (!finished[b]) {
        if (next[b] == options.eot) {
          finished[b] = true;
        } else {
          outputs[b].push_back(next[b]);
        }
      }
      all_finished = all_finished && finished[b];
    }
    if (all_finished) break;
    tokens = next;
    n_tokens = 1;
  }
  return outputs;
}

}  // namespace liteasr::detail
