#include "windows.hpp"

namespace liteasr::detail {

std::vector<std::pair<size_t, size_t>> split_windows(const float* audio, size_t n) {
  constexpr size_t frame = 16000 / 50;   // 20 ms
  constexpr size_t search = 16000 * 5;   // the last 5 s of a window
  std::vector<std::pair<size_t, size_t>> windows;
  size_t start = 0;
  while (n - start > kWindowSamples) {
    const size_t tail = start + kWindowSamples - search;
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
    const size_t cut = tail + best * frame + frame / 2;
    windows.emplace_back(start, cut - start);
    start = cut;
  }
  windows.emplace_back(start, n - start);
  return windows;
}

}  // namespace liteasr::detail
