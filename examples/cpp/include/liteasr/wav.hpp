// WAV input for liteasr::Transcriber: 16 kHz mono, 16-bit PCM or 32-bit
// float (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT or their
// WAVE_FORMAT_EXTENSIBLE forms). Anything else throws liteasr::Error that
// says how to convert the file; this library does no resampling or mixing.
#pragma once

#include <string>
#include <vector>

namespace liteasr {

constexpr int kSampleRate = 16000;

/// Samples of a WAV file as float in [-1, 1] (16-bit PCM is divided by 32768).
std::vector<float> read_wav(const std::string& path);

/// The same from the bytes of a WAV file held in memory; `name` is used in errors.
std::vector<float> decode_wav(const std::string& bytes, const std::string& name = "<memory>");

}  // namespace liteasr
