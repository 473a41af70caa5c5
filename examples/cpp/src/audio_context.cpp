#include "audio_context.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "liteasr/error.hpp"

namespace liteasr {

AudioContext parse_audio_context(const std::string& text) {
  std::string value;
  for (char c : text) value += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto first = value.find_first_not_of(" \t\n\r\f\v");
  value = first == std::string::npos ? "" : value.substr(first, value.find_last_not_of(" \t\n\r\f\v") - first + 1);
  AudioContext out;
  if (value == "full") {
    out.mode = AudioContext::Mode::full;
    return out;
  }
  if (value == "auto") {
    out.mode = AudioContext::Mode::automatic;
    return out;
  }
  const bool frames_given = !value.empty() && value.back() == 'f';
  const std::string number = frames_given || (!value.empty() && value.back() == 's') ? value.substr(0, value.size() - 1) : value;
  // a decimal number (strtod alone would also take hex, inf and nan)
  double amount = 0.0;
  const bool decimal = !number.empty() && number.find_first_not_of("0123456789.eE+-") == std::string::npos;
  char* end = nullptr;
  if (decimal) amount = std::strtod(number.c_str(), &end);
  if (!decimal || *end != '\0' || !(amount > 0.0) || !std::isfinite(amount)) {
    throw Error("audio_context must be full, auto, seconds (10, 7.5s) or mel frames (1000f), got '" + text + "'",
                "pass full, auto, a number of seconds, or of mel frames with f");
  }
  double frames = frames_given ? amount : amount * 16000.0 / 160.0;  // as Python computes it: rate / hop
  frames = std::ceil(frames / detail::kInputStride) * detail::kInputStride;  // up to even: the encoder halves it
  out.mode = AudioContext::Mode::frames;
  out.frames = static_cast<int64_t>(std::min(std::max(frames, static_cast<double>(detail::kInputStride)),
                                             static_cast<double>(kFullContextFrames)));
  return out;
}

namespace detail {

int64_t auto_context_frames(size_t samples) {
  const int64_t need = static_cast<int64_t>((samples + 159) / 160) + kAutoTailFrames;
  for (int64_t bucket : kAutoBuckets) {
    if (bucket >= need) return bucket;
  }
  return kFullContextFrames;
}

AudioContext resolve_audio_context(const AudioContext& context, const std::string& manifest_default) {
  AudioContext out = context;
  if (out.mode == AudioContext::Mode::manifest) {
    out.mode = manifest_default == "auto" ? AudioContext::Mode::automatic : AudioContext::Mode::full;
  }
  if (out.mode != AudioContext::Mode::frames) {
    out.frames = kFullContextFrames;
    return out;
  }
  if (out.frames < kInputStride || out.frames % kInputStride) {
    throw Error("audio_context.frames must be an even number of mel frames >= " + std::to_string(kInputStride) +
                    ", got " + std::to_string(out.frames),
                "pass an even number (100 mel frames per second), or Mode::full");
  }
  out.frames = std::min(out.frames, kFullContextFrames);
  return out;
}

int64_t window_frames(const AudioContext& context) {
  return context.mode == AudioContext::Mode::frames ? context.frames : kFullContextFrames;
}

int64_t shortest_context_frames(const AudioContext& context) {
  return context.mode == AudioContext::Mode::automatic ? kAutoBuckets.front() : window_frames(context);
}

}  // namespace detail
}  // namespace liteasr
