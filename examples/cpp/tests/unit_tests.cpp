// Unit tests of the pieces that need no model: WAV reading, byte-level BPE
// decoding, the greedy loop, window splitting and sha256 checks. A failed CHECK prints the
// expression and the test exits non-zero (no test framework: six checks do
// not need one, and the example stays dependency-light).
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <unistd.h>
#include <string>
#include <vector>

#include "detokenizer.hpp"
#include "greedy.hpp"
#include "integrity.hpp"
#include "liteasr/error.hpp"
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
}

void write_file(const std::filesystem::path& path, const std::string& text, bool old) {
  std::ofstream(path, std::ios::binary) << text;
  if (old) {  // an mtime a minute ago: outside the racy window, so the check records it
    const auto t = std::filesystem::last_write_time(path) - std::chrono::seconds(60);
    std::filesystem::last_write_time(path, t);
  }
}

void test_integrity() {
  namespace fs = std::filesystem;
  using liteasr::detail::sha256_hex;
  using liteasr::detail::verify_files;
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const fs::path root = fs::temp_directory_path() / ("liteasr_unit_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  write_file(root / "a.onnx", "weights", true);
  const std::map<std::string, std::string> expected{{"a.onnx", sha256_hex("weights")}};
  verify_files(root, expected, {"a.onnx"});  // full check, recorded in the stamp
  std::ifstream stamp(root / ".liteasr-verified.json");
  const std::string text((std::istreambuf_iterator<char>(stamp)), std::istreambuf_iterator<char>());
  CHECK(text.find("liteasr-verified/1") != std::string::npos && text.find(sha256_hex("weights")) != std::string::npos);
  verify_files(root, expected, {"a.onnx"});  // fast path
  write_file(root / "a.onnx", "wEights", false);  // same size, new mtime
  CHECK(throws_with([&] { verify_files(root, expected, {"a.onnx"}); }, "a.onnx is corrupt or was modified"));
  CHECK(throws_with([&] { verify_files(root, expected, {"b.onnx"}); }, "records no sha256 for b.onnx"));
  fs::remove_all(root);
}

}  // namespace

int main() {
  test_wav();
  test_detokenizer();
  test_greedy();
  test_windows();
  test_integrity();
  if (failures) {
    std::cerr << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "all unit checks passed\n";
  return 0;
}
