#include "windows.hpp"

#include <algorithm>

namespace liteasr::detail {

std::vector<std::pair<size_t, size_t>> split_windows(const float* audio, size_t n, size_t window) {
  constexpr size_t frame = 16000 / 50;  // 20 ms
  const size_t search = std::min<size_t>(16000 * 5, window / 2 / frame * frame);  // the last 5 s, or half
  std::vector<std::pair<size_t, size_t>> windows;
  size_t start = 0;
  while (n - start > window) {
    size_t cut = start + window;  // a window under 40 ms: cut where it ends
    if (search >= frame) {
      const size_t tail = start + window - search;
      size_t best = 0;
      double best_energy = 0.0;
      for (size_t f = 0; f < search / frame; ++f) {
        double energy = 0.0;  // numpy sums float32 squares pairwise; double differs only on near-ties
        for (size_t k = 0; k < frame; ++k) {
          const double x = audio[tail + f * frame + k];
          energy += x * x;
        }
        if (f == 0 || energy < best_energy) {  // first minimum, as numpy's argmin
          best = f;
          best_energy = energy;
        }
      }
      cut = tail + best * frame + frame / 2;
    }
    windows.emplace_back(start, cut - start);
    start = cut;
  }
  windows.emplace_back(start, n - start);
  return windows;
}

}  // namespace liteasr::detail
