// Transcripts as JSON and SRT, the layouts of liteasr-transcribe
// --output-format json / srt (liteasr_export/output_formats.py).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "liteasr/transcriber.hpp"

namespace liteasr {
namespace {

/// HH:MM:SS,mmm, rounded to milliseconds.
std::string srt_time(double seconds) {
  long long millis = std::llround(std::max(0.0, seconds) * 1000.0);
  const long long hours = millis / 3600000;
  millis -= hours * 3600000;
  const long long minutes = millis / 60000;
  millis -= minutes * 60000;
  const long long secs = millis / 1000;
  millis -= secs * 1000;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%02lld:%02lld:%02lld,%03lld", hours, minutes, secs, millis);
  return buffer;
}

/// One subtitle line: whitespace runs (line breaks too) become one space.
std::string one_line(const std::string& text) {
  std::istringstream words(text);
  std::string word, out;
  while (words >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

}  // namespace

std::string to_json(const Transcript& t, const std::string& audio) {
  nlohmann::json segments = nlohmann::json::array(), windows = nlohmann::json::array();
  for (const auto& s : t.segments) segments.push_back({{"start", s.start}, {"end", s.end}, {"text", s.text}});
  for (const auto& w : t.windows) {
    windows.push_back({{"start", w.start}, {"end", w.end}, {"temperature", w.temperature}, {"fallback", w.fallback},
                       {"outcome", w.outcome}, {"avg_logprob", w.avg_logprob},
                       {"compression_ratio", w.compression_ratio}, {"no_speech_prob", w.no_speech_prob},
                       {"temperatures_tried", w.temperatures_tried}, {"audio_context", w.audio_context},
                       {"full_context_retry", w.full_context_retry}});
  }
  nlohmann::json out = {{"audio", audio}, {"text", t.text}, {"duration", t.duration},
                        {"segments", segments}, {"windows", windows}};
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string to_srt(const Transcript& t) {
  std::string out;
  int index = 0;
  for (const auto& s : t.segments) {
    const std::string text = one_line(s.text);
    if (text.empty()) continue;
    if (index) out += "\n";
    out += std::to_string(++index) + "\n" + srt_time(s.start) + " --> " + srt_time(std::max(s.end, s.start)) + "\n" +
           text + "\n";
  }
  return out;
}

}  // namespace liteasr
