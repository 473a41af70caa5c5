#include "detokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "liteasr/error.hpp"

namespace liteasr::detail {
using nlohmann::json;

// GPT-2's table, written by hand (it is a few lines and no C++ library with a
// stable API ships it): printable Latin-1 bytes stand for themselves, the
// other 68 bytes map to code points 256, 257, ... in byte order.
const std::unordered_map<char32_t, unsigned char>& unicode_to_byte() {
  static const auto table = [] {
    std::unordered_map<char32_t, unsigned char> map;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      map[printable ? static_cast<char32_t>(b) : next++] = static_cast<unsigned char>(b);
    }
    return map;
  }();
  return table;
}

namespace {

/// Length of the valid UTF-8 sequence at s[i] (0 if invalid), and how many
/// bytes form its maximal invalid prefix in `bad` (>= 1) when invalid.
size_t utf8_sequence(const std::string& s, size_t i, size_t& bad, char32_t* cp = nullptr) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  bad = 1;
  if (lead < 0x80) {
    if (cp) *cp = lead;
    return 1;
  }
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) len = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  char32_t value = lead & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char c = byte(i + k);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return 0;
    value = (value << 6) | (c & 0x3F);
    bad = k + 1;
  }
  if (cp) *cp = value;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// The bytes a token stands for; a token with a character outside the table
/// stands for its own UTF-8 (the tokenizers library's ByteLevel decoder rule).
std::string token_bytes(const std::string& token) {
  const auto& table = unicode_to_byte();
  std::string out;
  for (size_t i = 0, bad = 0; i < token.size();) {
    char32_t cp = 0;
    const size_t len = utf8_sequence(token, i, bad, &cp);
    auto it = len ? table.find(cp) : table.end();
    if (it == table.end()) return token;
    out += static_cast<char>(it->second);
    i += len;
  }
  return out;
}

bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F); }

}  // namespace

std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0, bad = 0; i < bytes.size();) {
    const size_t len = utf8_sequence(bytes, i, bad);
    if (len) {
      out.append(bytes, i, len);
      i += len;
    } else {
      append_utf8(out, 0xFFFD);
      i += bad;
    }
  }
  return out;
}

Detokenizer::Detokenizer(const std::filesystem::path& tokenizer_json) {
  json data;
  try {
    std::ifstream in(tokenizer_json);
    if (!in) throw Error("tokenizer not found: " + tokenizer_json.string(), "copy the whole artifacts folder");
    data = json::parse(in);
    const json& model = data.at("model");
    if (model.value("type", "") != "BPE") {
      throw Error(tokenizer_json.string() + " is not a BPE tokenizer", "use the tokenizer.json liteasr-export wrote");
    }
    auto put = [&](const std::string& token, int64_t id) {
      if (id < 0) throw Error(tokenizer_json.string() + " has a negative token id", "re-export the artifacts folder");
      if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
      tokens_[static_cast<size_t>(id)] = token;
    };
    for (const auto& [token, id] : model.at("vocab").items()) put(token, id.get<int64_t>());
    for (const auto& added : data.value("added_tokens", json::array())) {
      put(added.at("content").get<std::string>(), added.at("id").get<int64_t>());
    }
  } catch (const json::exception& exc) {
    throw Error("cannot read " + tokenizer_json.string() + ": " + exc.what(), "re-export the artifacts folder");
  }
}

int64_t Detokenizer::n_vocab() const {
  constexpr int64_t kTimestamps = 1501;  // <|0.00|> ... <|30.00|>
  const auto size = static_cast<int64_t>(tokens_.size());
  const auto it = std::find(tokens_.begin(), tokens_.end(), "<|notimestamps|>");
  return it == tokens_.end() ? size : std::max(size, static_cast<int64_t>(it - tokens_.begin()) + 1 + kTimestamps);
}

std::string Detokenizer::decode(const std::vector<int64_t>& ids, int64_t eot) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= eot) continue;
    if (static_cast<size_t>(id) >= tokens_.size()) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary", "the tokenizer does not match the model: re-export");
    }
    bytes += token_bytes(tokens_[static_cast<size_t>(id)]);
  }
  std::string text = utf8_lossy(bytes);
  size_t begin = 0, end = text.size();
  while (begin < end && is_space(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && is_space(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

}  // namespace liteasr::detail
