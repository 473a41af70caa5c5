#include "integrity.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "liteasr/error.hpp"

namespace liteasr::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStampName = ".liteasr-verified.json";
constexpr const char* kStampFormat = "liteasr-verified/1";
constexpr double kRacySeconds = 2.0;  // files younger than this are hashed at every check

struct Digest {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Digest() {
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("OpenSSL sha256 init failed");
  }
  void update(const char* data, size_t n) { EVP_DigestUpdate(ctx.get(), data, n); }
  std::string hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), out, &n);
    static const char* digits = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < n; ++i) {
      text += digits[out[i] >> 4];
      text += digits[out[i] & 15];
    }
    return text;
  }
};

struct FileStat {
  long long size = 0;
  long long mtime_ns = 0;
  double age_s = 0;
};

FileStat stat_file(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot read " + path.string(), "copy the whole folder or re-export it");
  FileStat out;
  out.size = static_cast<long long>(st.st_size);
  out.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  out.age_s = now - static_cast<double>(st.st_mtim.tv_sec) - st.st_mtim.tv_nsec * 1e-9;
  return out;
}

fs::path cache_stamp(const fs::path& root) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home ? home : ".") / ".cache";
  std::error_code ec;
  const fs::path resolved = fs::canonical(root, ec);
  return base / "liteasr-export" / "verified" / (sha256_hex((ec ? root : resolved).string()).substr(0, 24) + ".json");
}

json read_stamp(const fs::path& root) {
  for (const fs::path& path : {root / kStampName, cache_stamp(root)}) {
    std::ifstream in(path);
    if (!in) continue;
    try {
      json data = json::parse(in);
      if (data.is_object() && data.value("format", "") == kStampFormat && data.contains("files") && data["files"].is_object()) {
        return data["files"];
      }
    } catch (const json::exception&) {
    }
  }
  return json::object();
}

/// Atomically, in the folder, else in the cache; nowhere when neither can be written.
void write_stamp(const fs::path& root, const json& files) {
  const std::string text = json{{"format", kStampFormat}, {"files", files}}.dump(1) + "\n";
  for (const fs::path& path : {root / kStampName, cache_stamp(root)}) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) continue;
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::fchmod(fd, 0644);
    ::close(fd);
    if (written && std::rename(tmpl.c_str(), path.c_str()) == 0) return;
    std::remove(tmpl.c_str());
  }
}

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  Digest digest;
  digest.update(bytes.data(), bytes.size());
  return digest.hex();
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string(), "copy the whole folder or re-export it");
  Digest digest;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    digest.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return digest.hex();
}

void verify_files(const fs::path& root, const std::map<std::string, std::string>& expected,
                  const std::vector<std::string>& files) {
  json stamp = read_stamp(root);
  bool changed = false;
  for (const auto& rel : files) {
    auto want = expected.find(rel);
    if (want == expected.end()) {
      throw Error((root / "manifest.json").string() + " records no sha256 for " + rel,
                  "re-export the folder with liteasr-export, or pass --no-verify to skip the check");
    }
    const FileStat st = stat_file(root / rel);
    const json seen = {{"mtime_ns", st.mtime_ns}, {"sha256", want->second}, {"size", st.size}};
    if (stamp.contains(rel) && stamp[rel] == seen) continue;
    const std::string got = sha256_file(root / rel);
    if (got != want->second) {
      throw Error((root / rel).string() + " is corrupt or was modified: its sha256 is " + got.substr(0, 12) +
                      "..., manifest.json records " + want->second.substr(0, 12) + "...",
                  "copy the folder again or re-export it (--no-verify skips this check)");
    }
    if (st.age_s > kRacySeconds) {
      stamp[rel] = seen;
      changed = true;
    }
  }
  if (changed) write_stamp(root, stamp);
}

}  // namespace liteasr::detail
