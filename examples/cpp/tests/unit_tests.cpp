// Unit tests of the pieces that need no model: WAV reading, byte-level BPE
// decoding, the greedy loop, the timestamp rules and segments, the
// temperature fallback, SRT output, window splitting, audio contexts (parsing, the bucket
// `auto` picks) and sha256 checks. A failed CHECK prints the
// expression and the test exits non-zero (no test framework: six checks do
// not need one, and the example stays dependency-light).
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <functional>
#include <iostream>
#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <unistd.h>
#include <string>
#include <vector>

#include "audio_context.hpp"
#include "detokenizer.hpp"
#include "decoding.hpp"
#include "integrity.hpp"
#include "liteasr/error.hpp"
#include "liteasr/transcriber.hpp"
#include "liteasr/wav.hpp"
#include "windows.hpp"

namespace {

int failures = 0;

#define CHECK(expr)                                                            \
  do {                                                                         \
    if (!(expr)) {                                                             \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #expr "\n"; \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

/// `fn` throws liteasr::Error whose message contains `needle`.
bool throws_with(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const liteasr::Error& exc) {
    if (std::string(exc.what()).find(needle) != std::string::npos) return true;
    std::cerr << "  message was: " << exc.what() << "\n";
    return false;
  }
  return false;
}

void put16(std::string& s, uint16_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8);
}
void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::string wav(uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits, const std::string& samples,
                bool extensible = false, bool odd_chunk = false) {
  std::string fmt;
  put16(fmt, extensible ? 0xFFFE : format);
  put16(fmt, channels);
  put32(fmt, rate);
  put32(fmt, rate * channels * bits / 8);
  put16(fmt, static_cast<uint16_t>(channels * bits / 8));
  put16(fmt, bits);
  if (extensible) {
    put16(fmt, 22);
    put16(fmt, bits);
    put32(fmt, channels == 1 ? 4 : 3);
    put16(fmt, format);  // sub-format GUID: format code, then the fixed tail
    fmt += std::string("\x00\x00\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71", 14);
  }
  std::string body = "WAVE";
  body += "fmt ";
  put32(body, static_cast<uint32_t>(fmt.size()));
  body += fmt;
  if (odd_chunk) {  // a LIST chunk of odd size: the reader must skip its pad byte
    body += "LIST";
    put32(body, 3);
    body += std::string("abc\0", 4);
  }
  body += "data";
  put32(body, static_cast<uint32_t>(samples.size()));
  body += samples;
  std::string out = "RIFF";
  put32(out, static_cast<uint32_t>(body.size()));
  return out + body;
}

void test_wav() {
  std::string pcm;
  for (int16_t v : {int16_t(0), int16_t(16384), int16_t(-32768), int16_t(32767)}) put16(pcm, static_cast<uint16_t>(v));
  const auto a = liteasr::decode_wav(wav(1, 1, 16000, 16, pcm));
  CHECK(a.size() == 4 && a[0] == 0.0f && a[1] == 0.5f && a[2] == -1.0f && a[3] == 32767.0f / 32768.0f);
  const auto b = liteasr::decode_wav(wav(1, 1, 16000, 16, pcm, true, true));
  CHECK(b == a);

  std::string f32;
  for (float v : {0.25f, -0.75f}) {
    uint32_t word;
    std::memcpy(&word, &v, 4);
    put32(f32, word);
  }
  const auto c = liteasr::decode_wav(wav(3, 1, 16000, 32, f32));
  CHECK(c.size() == 2 && c[0] == 0.25f && c[1] == -0.75f);

  CHECK(throws_with([&] { liteasr::decode_wav(wav(1, 1, 8000, 16, pcm)); }, "8000 Hz, expected 16000 Hz"));
  CHECK(throws_with([&] { liteasr::decode_wav(wav(1, 2, 16000, 16, pcm)); }, "2 channels, expected mono"));
  CHECK(throws_with([&] { liteasr::decode_wav(wav(1, 1, 16000, 24, pcm.substr(0, 6))); }, "24-bit samples"));
  CHECK(throws_with([&] { liteasr::decode_wav(wav(1, 1, 16000, 16, "")); }, "has no samples"));
  CHECK(throws_with([&] { liteasr::decode_wav("OggS and more bytes"); }, "not a WAV file"));
  CHECK(throws_with([&] { liteasr::read_wav("/nonexistent/file.wav"); }, "audio file not found"));
}

void test_detokenizer() {
  using liteasr::detail::Detokenizer;
  const auto& table = liteasr::detail::unicode_to_byte();
  CHECK(table.size() == 256);
  CHECK(table.at(U'\u0120') == ' ' && table.at(U'\u010A') == '\n' && table.at(U'!') == '!' && table.at(U'\u00FF') == 0xFF);

  // "Ġcaf" + "Ã©" (bytes 0xC3 0xA9: é), "<|x|>" at the eot id (dropped)
  Detokenizer tok({"Hello", "\xC4\xA0world", "\xC4\xA0" "caf", "\xC3\x83\xC2\xA9", "\xC4\xA0", "<|x|>"});
  CHECK(tok.decode({0, 1, 2, 3, 5}, 5) == "Hello world café");
  CHECK(tok.decode({4, 1, 4}, 5) == "world");            // surrounding whitespace stripped
  CHECK(tok.decode({3, 3}, 5) == "\xC3\xA9\xC3\xA9");      // é é without space

  CHECK(liteasr::detail::utf8_lossy("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(liteasr::detail::utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD");          // one maximal invalid subpart
  CHECK(liteasr::detail::utf8_lossy("\xE2\x82\xAC") == "\xE2\x82\xAC");      // valid euro sign kept
  CHECK(liteasr::detail::utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

void test_greedy() {
  liteasr::detail::DecodingOptions options;
  options.prompt = {7, 8};
  options.eot = 0;
  options.suppress = {5};
  options.suppress_begin = {3};
  options.max_new_tokens = 10;
  // vocab 6: row 0 prefers 5 (suppressed), then 3 (begin-suppressed at step 0),
  // then 4 at step 0, 3 afterwards, and ends at step 2; row 1 ends at once.
  std::vector<std::vector<int64_t>> fed;
  int calls = 0;
  liteasr::detail::DecoderStep step = [&](const std::vector<int64_t>& tokens, int64_t batch, int64_t n) {
    CHECK(static_cast<int64_t>(tokens.size()) == batch * n);
    fed.push_back(tokens);
    std::vector<float> logits(batch * 6, 0.0f);
    logits[5] = 9;
    logits[3] = 8;
    logits[4] = 7;
    logits[0] = calls == 2 ? 10 : -1;
    logits[6 + 0] = 1;
    ++calls;
    return logits;
  };
  const auto out = liteasr::detail::greedy_decode(step, 2, options);
  CHECK(out.size() == 2 && out[0] == (std::vector<int64_t>{4, 3}) && out[1].empty());
  CHECK(calls == 3);
  CHECK(fed.size() == 3 && fed[0] == (std::vector<int64_t>{7, 8, 7, 8}) && fed[1] == (std::vector<int64_t>{4, 0}) &&
        fed[2] == (std::vector<int64_t>{3, 0}));

  options.max_new_tokens = 2;  // stops without <|endoftext|>
  calls = 0;
  liteasr::detail::DecoderStep never_ends = [&](const std::vector<int64_t>&, int64_t batch, int64_t) {
    ++calls;
    std::vector<float> logits(batch * 6, 0.0f);
    logits[2] = 1;
    return logits;
  };
  CHECK(liteasr::detail::greedy_decode(never_ends, 1, options) == (std::vector<std::vector<int64_t>>{{2, 2}}));
  CHECK(calls == 2);
}

void test_windows() {
  using liteasr::detail::kWindowSamples;
  using liteasr::detail::split_windows;
  std::vector<float> audio(16000 * 70);
  for (size_t i = 0; i < audio.size(); ++i) audio[i] = 0.1f * std::sin(0.05f * static_cast<float>(i)) + 0.2f;
  const size_t quiet = 16000 * 27 + 320 * 7;  // a silent 20 ms frame inside the first window's last 5 s
  std::fill(audio.begin() + quiet, audio.begin() + quiet + 320, 0.0f);
  const auto w = split_windows(audio.data(), audio.size());
  CHECK(w.size() == 3);
  CHECK(w[0].first == 0 && w[0].second == quiet + 160);  // cut in the middle of the quiet frame
  CHECK(w[1].first == quiet + 160 && w[1].second <= kWindowSamples);
  CHECK(w[2].first + w[2].second == audio.size());

  CHECK(split_windows(audio.data(), kWindowSamples).size() == 1);
  CHECK(split_windows(audio.data(), 100) == (std::vector<std::pair<size_t, size_t>>{{0, 100}}));

  // windows of 8 s (an audio context): the quiet cut is searched in their last half (4 s), not 5 s
  std::vector<float> loud(16000 * 12, 0.3f);
  const size_t early = 16000 * 3 + 320 * 2;  // quiet, but before the last half of the first window
  const size_t late = 16000 * 6 + 320 * 5;   // quiet, inside it
  std::fill(loud.begin() + early, loud.begin() + early + 320, 0.0f);
  std::fill(loud.begin() + late, loud.begin() + late + 320, 0.01f);
  const auto eight = split_windows(loud.data(), loud.size(), 16000 * 8);
  CHECK(eight.size() == 2);
  CHECK(eight[0].first == 0 && eight[0].second == late + 160);
  for (const auto& [start, length] : eight) CHECK(length <= 16000 * 8);
  CHECK(eight.back().first + eight.back().second == loud.size());
  // a window under 40 ms: cut where it ends
  CHECK(split_windows(loud.data(), 1000, 300) == (std::vector<std::pair<size_t, size_t>>{{0, 300}, {300, 300}, {600, 300}, {900, 100}}));
}

// ---------------------------------------------------------------- audio contexts (as liteasr_export.core.windowed)

void test_audio_context() {
  using liteasr::AudioContext;
  using liteasr::parse_audio_context;
  using Mode = AudioContext::Mode;
  CHECK(parse_audio_context("full").mode == Mode::full);
  CHECK(parse_audio_context(" AUTO ").mode == Mode::automatic);
  auto frames = [](const std::string& text) {
    const auto c = parse_audio_context(text);
    return c.mode == Mode::frames ? c.frames : -1;
  };
  CHECK(frames("10") == 1000);       // seconds
  CHECK(frames("7.5s") == 750);
  CHECK(frames("7.51") == 752);      // 751 frames, up to even: the encoder halves it
  CHECK(frames("1000f") == 1000);    // mel frames
  CHECK(frames("1001F") == 1002);
  CHECK(frames("0.001") == 2);       // at least 2
  CHECK(frames("1f") == 2);
  CHECK(frames("45") == 3000);       // at most 30 s
  CHECK(frames("1e9") == 3000);
  CHECK(frames("3000f") == 3000);
  for (const char* bad : {"0", "0s", "0f", "-3s", "abc", "", "s", "f", "nan", "inf", "0x10", "10 s", "1e", "10ss", "1_000f"}) {
    CHECK(throws_with([&] { parse_audio_context(bad); },
                      std::string("audio_context must be full, auto, seconds (10, 7.5s) or mel frames (1000f), got '") + bad + "'"));
  }

  using liteasr::detail::auto_context_frames;
  CHECK(auto_context_frames(1) == 300);                // 1 frame + the 1 s tail
  CHECK(auto_context_frames(16000 * 2) == 300);        // 200 + 100
  CHECK(auto_context_frames(16000 * 2 + 1) == 400);    // 201 + 100 frames: the next bucket
  CHECK(auto_context_frames(16000 * 4) == 500);        // a 4 s clip encodes 5 s, not 10
  CHECK(auto_context_frames(16000 * 6) == 700);        // a 6 s clip encodes 7 s, not 8
  CHECK(auto_context_frames(16000 * 7) == 800);
  CHECK(auto_context_frames(16000 * 14) == 1500);
  CHECK(auto_context_frames(16000 * 24) == 2500);
  CHECK(auto_context_frames(16000 * 24 + 1) == 3000);
  CHECK(auto_context_frames(16000 * 30) == 3000);      // a full window stays at 30 s

  using liteasr::detail::resolve_audio_context;
  CHECK(resolve_audio_context({}, "full").mode == Mode::full);
  CHECK(resolve_audio_context({}, "auto").mode == Mode::automatic);
  CHECK(resolve_audio_context({Mode::full, 0}, "auto").mode == Mode::full);
  CHECK(resolve_audio_context({Mode::frames, 4000}, "full").frames == 3000);
  CHECK(liteasr::detail::window_frames(resolve_audio_context({Mode::frames, 1000}, "auto")) == 1000);
  CHECK(liteasr::detail::window_frames(resolve_audio_context({}, "auto")) == 3000);
  CHECK(liteasr::detail::shortest_context_frames(resolve_audio_context({}, "auto")) == 300);
  CHECK(liteasr::detail::shortest_context_frames(resolve_audio_context({}, "full")) == 3000);
  for (int64_t bad : {0, 1, 999, -2}) {
    CHECK(throws_with([&] { resolve_audio_context({Mode::frames, bad}, "full"); },
                      "audio_context.frames must be an even number of mel frames >= 2, got " + std::to_string(bad)));
  }
}

// ---------------------------------------------------------------- timestamps (as tests/test_decoding.py)

constexpr int64_t kTB = 20;  // toy vocabulary of 40: text 0..9, eot 10, specials 11..19, timestamps 20..39

liteasr::detail::DecodingOptions timestamp_options() {
  liteasr::detail::DecodingOptions o;
  o.prompt = {11};
  o.eot = 10;
  for (int64_t i = 11; i < 19; ++i) o.suppress.push_back(i);
  o.no_timestamps = 19;
  o.timestamp_begin = kTB;
  o.timestamps = true;
  o.max_initial_timestamp_index = 3;
  return o;
}

/// Tokens the rules leave possible after `history` (text far likelier than timestamps unless `logits` says).
std::vector<int64_t> allowed(const std::vector<int64_t>& history, std::vector<float> logits = {}) {
  if (logits.empty()) {
    logits.assign(40, 0.0f);
    std::fill(logits.begin(), logits.begin() + kTB, 5.0f);
  }
  int64_t last = -1;
  for (int64_t t : history) if (t >= kTB) last = t;
  liteasr::detail::apply_rules(logits.data(), 40, history, last, timestamp_options());
  std::vector<int64_t> out;
  for (int64_t i = 0; i < 40; ++i) if (std::isfinite(logits[i])) out.push_back(i);
  return out;
}

std::vector<int64_t> range(int64_t a, int64_t b, std::vector<int64_t> extra = {}) {
  for (int64_t i = a; i < b; ++i) extra.push_back(i);
  std::sort(extra.begin(), extra.end());
  return extra;
}

void test_timestamp_rules() {
  CHECK(allowed({}) == range(kTB, kTB + 4));                             // an early timestamp first
  CHECK(allowed({kTB, 1, 2, kTB + 5, kTB + 5}) == range(0, 11));         // after a pair: text or the end
  CHECK(allowed({kTB, 1, 2, kTB + 5}) == range(kTB + 5, 40, {10}));      // after a single one: its partner or the end
  CHECK(allowed({kTB, 1, 2}) == range(kTB + 1, 40, range(0, 11)));       // a segment has a nonzero length
  std::vector<float> likely(40, 0.0f);
  std::fill(likely.begin() + kTB + 4, likely.end(), 2.0f);
  CHECK(allowed({kTB, 1}, likely) == range(kTB + 1, 40));                // likelier timestamps silence text

  using liteasr::detail::timestamp_segments;
  auto [segments, advance] = timestamp_segments({kTB, 1, 2, kTB + 50, kTB + 50, 3, kTB + 100, kTB + 100, 4}, kTB, 10.0, 3000);
  CHECK(segments.size() == 2 && segments[0].start == 10.0 && std::abs(segments[1].end - 12.0) < 1e-9 && advance == 200);
  auto [ending, whole] = timestamp_segments({kTB, 1, kTB + 50, kTB + 60, 2, kTB + 90}, kTB, 0.0, 3000);
  CHECK(ending.size() == 2 && std::abs(ending[1].start - 1.2) < 1e-9 && std::abs(ending[1].end - 1.8) < 1e-9 && whole == 3000);
  auto [single, rest] = timestamp_segments({kTB, 1, 2, kTB + 40}, kTB, 5.0, 1000);
  CHECK(single.size() == 1 && std::abs(single[0].end - 5.8) < 1e-9 && rest == 1000);
  // a window of 10 s (an audio context) whose last complete segment ends past it (12 s): moves on by the window
  auto [past, by_window] = timestamp_segments({kTB, 1, kTB + 600, kTB + 600, 2}, kTB, 0.0, 1000);
  CHECK(past.size() == 1 && by_window == 1000);

  liteasr::detail::DecodingOptions manifest = timestamp_options();
  manifest.timestamps = false;
  manifest.prompt = {11, 19};
  manifest.suppress = range(11, 40);
  const auto ts = liteasr::detail::with_timestamps(manifest);
  CHECK(ts.timestamps && ts.prompt == (std::vector<int64_t>{11}) && ts.suppress == range(11, 19));
}

// ---------------------------------------------------------------- fallback

/// Vocabulary 12, eot 5, <|nospeech|> 11. Windows in `looping` repeat token 1
/// (logit `loop`) forever; the others say 2, 2 and end.
liteasr::detail::Decoder loop_decoder(int64_t windows, std::vector<int64_t> looping, float loop, float flat = 1.0f,
                                      std::vector<int64_t>* rows_seen = nullptr) {
  struct State {
    std::vector<int64_t> rows;
    int fed = 0;
  };
  auto state = std::make_shared<State>();
  for (int64_t w = 0; w < windows; ++w) state->rows.push_back(w);
  liteasr::detail::Decoder d;
  d.step = [state, looping, loop, flat](const std::vector<int64_t>&, int64_t batch, int64_t) {
    CHECK(batch == static_cast<int64_t>(state->rows.size()));
    ++state->fed;
    std::vector<float> logits(static_cast<size_t>(batch) * 12, 0.0f);
    for (int64_t r = 0; r < batch; ++r) {
      float* row = logits.data() + r * 12;
      if (state->fed == 1) {
        row[11] = -30.0f;  // at <|startoftranscript|>: surely speech
      } else if (std::find(looping.begin(), looping.end(), state->rows[r]) != looping.end()) {
        row[1] = loop;
        row[5] = 6.0f;
      } else {
        row[state->fed < 4 ? 2 : 5] = 8.0f * flat;
      }
    }
    return logits;
  };
  d.reorder = [state, rows_seen](const std::vector<int64_t>& rows) {
    std::vector<int64_t> next;
    for (int64_t r : rows) next.push_back(state->rows[r]);
    state->rows = next;
    if (rows_seen) *rows_seen = next;
  };
  return d;
}

void test_fallback() {
  using namespace liteasr::detail;
  DecodingOptions o;
  o.prompt = {0, 9};
  o.eot = 5;
  o.sot = 0;
  o.no_speech = 11;
  o.max_new_tokens = 40;
  auto text_of = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (int64_t t : ids) s += (s.empty() ? "w" : " w") + std::to_string(t);
    return s;
  };
  // the first attempt loops on window 1, later ones do not: only window 1, as best_of samples, is decoded again
  int made = 0;
  std::vector<int64_t> rows_seen;
  auto factory = [&] { return loop_decoder(3, made++ == 0 ? std::vector<int64_t>{1} : std::vector<int64_t>{}, 8.0f, 1.0f, &rows_seen); };
  const auto out = decode_with_fallback(factory, 3, o, FallbackOptions{}, text_of, {0, 1, 2});
  CHECK(out.size() == 3 && out[0].outcome == "ok" && out[1].outcome == "ok" && out[2].outcome == "ok");
  CHECK(out[0].temperatures_tried.size() == 1 && out[1].temperatures_tried.size() == 2 && out[1].temperature == 0.2f);
  CHECK(out[1].tokens == (std::vector<int64_t>{2, 2}) && out[1].compression_ratio <= 2.4);
  CHECK(made == 2 && rows_seen == std::vector<int64_t>(5, 1));
  // a loop at every temperature is never emitted; with the check off it is what it is
  const auto loops = decode_with_fallback([] { return loop_decoder(1, {0}, 60.0f); }, 1, o, FallbackOptions{}, text_of, {0});
  CHECK(loops[0].outcome == "dropped-repetitive" && loops[0].tokens.empty() && loops[0].temperatures_tried.size() == 6);
  CHECK(compression_ratio(text_of(std::vector<int64_t>(40, 1))) > 2.4);
  const auto kept = decode_with_fallback([] { return loop_decoder(1, {0}, 60.0f); }, 1, o, FallbackOptions::none(), text_of, {0});
  CHECK(kept[0].outcome == "ok" && kept[0].tokens.size() == 40 && kept[0].temperatures_tried.size() == 1);
  // every temperature unsure (flat logits): the likeliest attempt is kept
  const auto unsure = decode_with_fallback([] { return loop_decoder(1, {}, 0.0f, 0.02f); }, 1, o, FallbackOptions{}, text_of, {0});
  CHECK(unsure[0].outcome == "fallback-exhausted" && !unsure[0].tokens.empty() && unsure[0].avg_logprob < -1.0);
  // the same values as Python's zlib-based ratio
  CHECK(compression_ratio(std::string("the cat sat on the mat. ") + "the cat sat on the mat. the cat sat on the mat. "
                          "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat. the cat sat on the mat. "
                          "the cat sat on the mat. ") == 6.0);
}

void test_srt() {
  liteasr::Transcript t;
  t.segments = {{0.0, 2.5, " First line."}, {2.5, 2.5, " "}, {3600.02, 3602.999, " Second,\nafter an hour."}};
  CHECK(liteasr::to_srt(t) == "1\n00:00:00,000 --> 00:00:02,500\nFirst line.\n\n"
                              "2\n01:00:00,020 --> 01:00:02,999\nSecond, after an hour.\n");
}

void write_file(const std::filesystem::path& path, const std::string& text, bool old) {
  std::ofstream(path, std::ios::binary) << text;
  if (old) {  // an mtime a minute ago (the ctime stays now)
    const auto t = std::filesystem::last_write_time(path) - std::chrono::seconds(60);
    std::filesystem::last_write_time(path, t);
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Overwrite a file's bytes (same size), then put its mtime back as `touch -r` would.
void rewrite_keeping_mtime(const std::filesystem::path& path, const std::string& text) {
  const auto mtime = std::filesystem::last_write_time(path);
  std::ofstream(path, std::ios::binary) << text;
  std::filesystem::last_write_time(path, mtime);
}

void test_integrity() {
  namespace fs = std::filesystem;
  using liteasr::detail::sha256_hex;
  using liteasr::detail::verify_files;
  constexpr double racy = 0.05;  // seconds, instead of the default 2 s
  const auto leave_racy_window = [] { ::usleep(100000); };
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const fs::path base = fs::temp_directory_path() / ("liteasr_unit_" + std::to_string(::getpid()));
  const fs::path root = base / "art", cache = base / "cache";
  fs::remove_all(base);
  fs::create_directories(root);
  ::setenv("XDG_CACHE_HOME", cache.c_str(), 1);  // stamps of this test in a cache of its own
  const fs::path stamps = cache / "liteasr-export" / "verified";
  const fs::path stamp = stamps / (sha256_hex(fs::canonical(root).string()).substr(0, 24) + ".json");
  write_file(root / "a.onnx", "weights", true);
  leave_racy_window();
  const std::map<std::string, std::string> expected{{"a.onnx", sha256_hex("weights")}};
  verify_files(root, expected, {"a.onnx"}, racy);  // full check, recorded in the private stamp
  const std::string text = read_text(stamp);
  CHECK(text.find("liteasr-verified/2") != std::string::npos && text.find(sha256_hex("weights")) != std::string::npos);
  CHECK(text.find("ctime_ns") != std::string::npos && text.find("inode") != std::string::npos);
  struct stat st {};
  CHECK(::stat(stamp.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(::stat(stamps.c_str(), &st) == 0 && (st.st_mode & 0777) == 0700);
  CHECK(!fs::exists(root / ".liteasr-verified.json"));  // nothing written into the folder
  verify_files(root, expected, {"a.onnx"}, racy);  // fast path

  // a copy (cp -a: same sizes and mtimes), then corrupted with its mtime put back: hashed, refused
  CHECK(std::system(("cp -a '" + root.string() + "' '" + (base / "copy").string() + "'").c_str()) == 0);
  rewrite_keeping_mtime(base / "copy" / "a.onnx", "wEights");
  CHECK(throws_with([&] { verify_files(base / "copy", expected, {"a.onnx"}, racy); }, "a.onnx is corrupt or was modified"));

  // touch -r after a change of the same size: the ctime moved
  leave_racy_window();
  rewrite_keeping_mtime(root / "a.onnx", "wEights");
  CHECK(throws_with([&] { verify_files(root, expected, {"a.onnx"}, racy); }, "a.onnx is corrupt or was modified"));

  // a stamp forged inside the folder (format 1: size, mtime, digest) is not read
  const fs::path forged_dir = base / "forged";
  fs::create_directories(forged_dir);
  write_file(forged_dir / "a.onnx", "wEights", true);
  ::stat((forged_dir / "a.onnx").c_str(), &st);
  const long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  std::ofstream(forged_dir / ".liteasr-verified.json")
      << "{\"format\": \"liteasr-verified/1\", \"files\": {\"a.onnx\": {\"size\": 7, \"mtime_ns\": " << mtime_ns
      << ", \"sha256\": \"" << sha256_hex("weights") << "\"}}}";
  CHECK(throws_with([&] { verify_files(forged_dir, expected, {"a.onnx"}, racy); }, "a.onnx is corrupt or was modified"));

  // a private stamp that others could write is ignored: the file is hashed again
  write_file(root / "a.onnx", "weights", true);
  leave_racy_window();
  verify_files(root, expected, {"a.onnx"}, racy);
  rewrite_keeping_mtime(root / "a.onnx", "wEights");
  ::stat((root / "a.onnx").c_str(), &st);
  std::string doctored = read_text(stamp);  // the corrupt file's ctime in place of the recorded one
  const std::string key = "\"ctime_ns\": ";
  const size_t found = doctored.find(key);
  CHECK(found != std::string::npos);
  if (found != std::string::npos) {
    const size_t at = found + key.size();
    doctored.replace(at, doctored.find_first_of(",\n}", at) - at,
                     std::to_string(static_cast<long long>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec));
  }
  std::ofstream(stamp, std::ios::trunc) << doctored;
  ::chmod(stamp.c_str(), 0666);
  CHECK(throws_with([&] { verify_files(root, expected, {"a.onnx"}, racy); }, "a.onnx is corrupt or was modified"));

  CHECK(throws_with([&] { verify_files(root, expected, {"b.onnx"}, racy); }, "records no sha256 for b.onnx"));
  ::unsetenv("XDG_CACHE_HOME");
  fs::remove_all(base);
}

}  // namespace

int main() {
  test_wav();
  test_detokenizer();
  test_greedy();
  test_timestamp_rules();
  test_fallback();
  test_srt();
  test_windows();
  test_audio_context();
  test_integrity();
  if (failures) {
    std::cerr << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "all unit checks passed\n";
  return 0;
}
