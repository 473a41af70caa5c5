// Long audio -> windows, as liteasr_export.core.frontend.window_bounds: when
// audio continues past a window, cut at the quietest 20 ms of the window's
// last 5 s (last half when the window is under 10 s; middle of that frame)
// so words are not cut in half.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace liteasr::detail {

constexpr size_t kWindowSamples = 16000 * 30;  // one 30 s window at 16 kHz

/// (offset, length) of each window of `n` samples at `audio`; `window`: the
/// longest window in samples (30 s; shorter under an audio context).
std::vector<std::pair<size_t, size_t>> split_windows(const float* audio, size_t n, size_t window = kWindowSamples);

}  // namespace liteasr::detail
