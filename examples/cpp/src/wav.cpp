// A small RIFF/WAVE reader, written here rather than taken from libsndfile:
// the library accepts exactly one kind of input (16 kHz mono, 16-bit PCM or
// 32-bit float) and must reject everything else with a clear message, which
// is a header check plus a sample conversion; libsndfile would add a runtime
// dependency to every embedding app and still need the same checks.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "liteasr/error.hpp"
#include "liteasr/wav.hpp"

namespace liteasr {
namespace {

constexpr uint16_t kFormatPcm = 0x0001;
constexpr uint16_t kFormatFloat = 0x0003;
constexpr uint16_t kFormatExtensible = 0xFFFE;
const std::string kConvert = "ffmpeg -i IN -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav";

uint16_t u16(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}

uint32_t u32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) | (static_cast<uint32_t>(b[2]) << 16) |
         (static_cast<uint32_t>(b[3]) << 24);
}

}  // namespace

std::vector<float> decode_wav(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0) {
    throw Error(name + " is not a WAV file (no RIFF/WAVE header)", "only WAV input is supported; convert it: " + kConvert);
  }
  const char* fmt = nullptr;
  size_t fmt_size = 0;
  const char* data = nullptr;
  size_t data_size = 0;
  for (size_t pos = 12; pos + 8 <= bytes.size();) {
    const std::string id = bytes.substr(pos, 4);
    size_t size = u32(bytes.data() + pos + 4);
    const size_t body = pos + 8;
    if (id == "data") {
      // streamed WAVs may leave the size at 0 or 0xFFFFFFFF: take what is there
      data = bytes.data() + body;
      data_size = std::min(size == 0 ? bytes.size() - body : size, bytes.size() - body);
      break;
    }
    if (body + size > bytes.size()) break;
    if (id == "fmt ") {
      fmt = bytes.data() + body;
      fmt_size = size;
    }
    pos = body + size + (size & 1);  // chunks are padded to even sizes
  }
  if (fmt == nullptr || fmt_size < 16) throw Error(name + " has no valid 'fmt ' chunk", "the file is damaged; re-create it: " + kConvert);
  if (data == nullptr) throw Error(name + " has no 'data' chunk", "the file is damaged; re-create it: " + kConvert);

  uint16_t format = u16(fmt);
  const uint16_t channels = u16(fmt + 2);
  const uint32_t rate = u32(fmt + 4);
  const uint16_t bits = u16(fmt + 14);
  if (format == kFormatExtensible && fmt_size >= 26) format = u16(fmt + 24);  // first bytes of the sub-format GUID

  if (channels != 1) {
    throw Error(name + " has " + std::to_string(channels) + " channels, expected mono",
                "mix it down to one channel: " + kConvert);
  }
  if (rate != kSampleRate) {
    throw Error(name + " is sampled at " + std::to_string(rate) + " Hz, expected 16000 Hz",
                "resample it to 16 kHz: " + kConvert);
  }
  std::vector<float> out;
  if (format == kFormatPcm && bits == 16) {
    out.resize(data_size / 2);
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<float>(static_cast<int16_t>(u16(data + 2 * i))) / 32768.0f;
    }
  } else if (format == kFormatFloat && bits == 32) {
    out.resize(data_size / 4);
    for (size_t i = 0; i < out.size(); ++i) {
      const uint32_t word = u32(data + 4 * i);
      std::memcpy(&out[i], &word, sizeof(float));
    }
  } else {
    std::ostringstream what;
    what << name << " holds " << bits << "-bit samples in WAV format 0x" << std::hex << format
         << ", expected 16-bit PCM or 32-bit float";
    throw Error(what.str(), "convert it to 16-bit PCM: " + kConvert);
  }
  if (out.empty()) throw Error(name + " has no samples", "pass a non-empty recording");
  return out;
}

std::vector<float> read_wav(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("audio file not found or unreadable: " + path, "check the path");
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return decode_wav(bytes.str(), path);
}

}  // namespace liteasr
