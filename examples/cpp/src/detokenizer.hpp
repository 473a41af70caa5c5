// Token ids -> text for Whisper's byte-level BPE vocabulary (tokenizer.json),
// matching the Python runtime's WhisperTokenizer.decode: ids >= <|endoftext|>
// are dropped, tokens are joined, mapped back to bytes through GPT-2's
// byte<->unicode table, decoded as UTF-8 (invalid sequences become U+FFFD, as
// the tokenizers library does) and stripped of surrounding whitespace.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace liteasr::detail {

/// GPT-2's bytes_to_unicode, inverted: code point -> byte.
const std::unordered_map<char32_t, unsigned char>& unicode_to_byte();

/// Replace invalid UTF-8 with U+FFFD, one per maximal invalid subpart (Rust's from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes);

class Detokenizer {
 public:
  /// Reads model.vocab and added_tokens of a tokenizer.json; throws liteasr::Error.
  explicit Detokenizer(const std::filesystem::path& tokenizer_json);
  /// Builds from id -> token strings (tests).
  explicit Detokenizer(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}

  /// Text of the content tokens: ids >= `eot` (special tokens) are dropped.
  std::string decode(const std::vector<int64_t>& ids, int64_t eot) const;

  /// Rows of the logits of a model with this vocabulary: its tokens and the
  /// 1501 timestamp tokens after <|notimestamps|>, which many tokenizer.json
  /// files leave out (Python's WhisperTokenizer.n_vocab).
  int64_t n_vocab() const;

 private:
  std::vector<std::string> tokens_;  // id -> token (byte-level unicode form)
};

}  // namespace liteasr::detail
