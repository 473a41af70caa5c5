// Long audio -> 30 s windows, as liteasr_export.core.frontend.split_windows: when
// audio continues past a window, cut at the quietest 20 ms of the window's
// last 5 s (middle of that frame) so words are not cut in half.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace liteasr::detail {

constexpr size_t kWindowSamples = 16000 * 30;  // one 30 s window at 16 kHz

/// (offset, length) of each window of `n` samples at `audio`.
std::vector<std::pair<size_t, size_t>> split_windows(const float* audio, size_t n);

}  // namespace liteasr::detail
