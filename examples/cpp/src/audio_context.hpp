// Audio contexts as liteasr_export.core.windowed states them: parsing
// (parse_audio_context, in the public header), the mel frames a window is
// encoded with under `auto` (auto_context_frames), and the check of an
// explicit frame count (audio_context_frames).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "liteasr/transcriber.hpp"

namespace liteasr::detail {

/// mel frames per encoder position (the encoder halves the length)
constexpr int64_t kInputStride = 2;
/// mel frames encoded after a window's audio under `auto` (1 s), so the model
/// still hears where the speech ends and can close its text
constexpr int64_t kAutoTailFrames = 100;
/// the lengths `auto` encodes with (mel frames)
constexpr std::array<int64_t, 13> kAutoBuckets = {300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1500, 2000, 2500, 3000};

/// The mel frames `auto` encodes a window of `samples` (16 kHz) with: its
/// audio plus kAutoTailFrames, rounded up to the next of kAutoBuckets.
int64_t auto_context_frames(size_t samples);

/// `context` checked and with Mode::manifest replaced by `manifest_default`
/// ("full" or "auto"); Mode::frames of more than 3000 becomes 3000. Throws
/// liteasr::Error for a frame count that is odd or under 2.
AudioContext resolve_audio_context(const AudioContext& context, const std::string& manifest_default);

/// The most mel frames a window holds under a resolved `context` (3000 for full and auto).
int64_t window_frames(const AudioContext& context);

/// The fewest mel frames a window is encoded with under a resolved `context`
/// (what the encoder graph must accept).
int64_t shortest_context_frames(const AudioContext& context);

}  // namespace liteasr::detail
