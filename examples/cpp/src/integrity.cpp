#include "integrity.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

constexpr const char* kStampFormat = "liteasr-verified/2";
constexpr long long kStampMaxAgeS = 30LL * 86400;  // stamps not rewritten for this long are pruned

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

long long ns(const struct timespec& t) { return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec; }

double now_s() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

/// What a user cannot set without the file changing (device, inode, ctime),
/// with size and mtime: the same fields as Python's integrity._identity.
json identity(const struct stat& st) {
  return {{"device", static_cast<long long>(st.st_dev)}, {"inode", static_cast<long long>(st.st_ino)},
          {"size", static_cast<long long>(st.st_size)}, {"mtime_ns", ns(st.st_mtim)}, {"ctime_ns", ns(st.st_ctim)}};
}

struct stat stat_or_throw(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot read " + path.string(), "copy the whole folder or re-export it");
  return st;
}

/// Owned by this user and writable by nobody else.
bool is_private(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_uid == ::geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

std::string resolved(const fs::path& root) {
  std::error_code ec;
  const fs::path path = fs::canonical(root, ec);
  return (ec ? fs::absolute(root) : path).string();
}

fs::path stamp_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home ? home : ".") / ".cache";
  return base / "liteasr-export" / "verified";
}

fs::path stamp_path(const fs::path& root) { return stamp_dir() / (sha256_hex(resolved(root)).substr(0, 24) + ".json"); }

/// The files a private stamp records for this very folder, else nothing.
json read_stamp(const fs::path& root, const struct stat& folder) {
  const fs::path path = stamp_path(root);
  if (!is_private(path.parent_path()) || !is_private(path)) return json::object();
  std::ifstream in(path);
  if (!in) return json::object();
  try {
    json data = json::parse(in);
    if (data.is_object() && data.value("format", "") == kStampFormat && data.contains("files") &&
        data["files"].is_object() && data.value("root", "") == resolved(root) &&
        data.value("device", -1LL) == static_cast<long long>(folder.st_dev) &&
        data.value("inode", -1LL) == static_cast<long long>(folder.st_ino)) {
      return data["files"];
    }
  } catch (const json::exception&) {
  }
  return json::object();
}

/// Remove stamps nobody rewrote for kStampMaxAgeS (folders deleted or moved long ago).
void prune(const fs::path& dir, const fs::path& keep) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    const fs::path& p = it->path();
    if (p.extension() == ".json" && p != keep && ::stat(p.c_str(), &st) == 0 &&
        now_s() - static_cast<double>(st.st_mtim.tv_sec) > kStampMaxAgeS) {
      ::unlink(p.c_str());
    }
  }
}

/// Atomically, mode 0600 in the 0700 stamp folder; nowhere when the cache
/// cannot be written (the next start then checks in full).
void write_stamp(const fs::path& root, const struct stat& folder, const json& files) {
  const fs::path path = stamp_path(root);
  const json data = {{"format", kStampFormat}, {"root", resolved(root)}, {"device", static_cast<long long>(folder.st_dev)},
                     {"inode", static_cast<long long>(folder.st_ino)}, {"files", files}};
  const std::string text = data.dump(1) + "\n";
  std::error_code ec;
  fs::create_directories(path.parent_path().parent_path(), ec);
  ::mkdir(path.parent_path().c_str(), 0700);  // an existing folder keeps its mode (and is trusted only if private)
  std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());  // mode 0600
  if (fd < 0) return;
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || std::rename(tmpl.c_str(), path.c_str()) != 0) {
    std::remove(tmpl.c_str());
    return;
  }
  prune(path.parent_path(), path);
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
                  const std::vector<std::string>& files, double racy_seconds) {
  const struct stat folder = stat_or_throw(root);
  json stamp = read_stamp(root, folder);
  bool changed = false;
  for (const auto& rel : files) {
    auto want = expected.find(rel);
    if (want == expected.end()) {
      throw Error((root / "manifest.json").string() + " records no sha256 for " + rel,
                  "re-export the folder with liteasr-export, or pass --no-verify to skip the check");
    }
    const struct stat st = stat_or_throw(root / rel);
    json seen = identity(st);
    seen["sha256"] = want->second;
    if (stamp.contains(rel) && stamp[rel] == seen) continue;
    const std::string got = sha256_file(root / rel);
    if (got != want->second) {
      throw Error((root / rel).string() + " is corrupt or was modified: its sha256 is " + got.substr(0, 12) +
                      "..., manifest.json records " + want->second.substr(0, 12) + "...",
                  "copy the folder again or re-export it (--no-verify skips this check)");
    }
    if (now_s() - static_cast<double>(std::max(ns(st.st_mtim), ns(st.st_ctim))) * 1e-9 > racy_seconds) {
      stamp[rel] = seen;
      changed = true;
    }
  }
  if (changed) write_stamp(root, folder, stamp);
}

}  // namespace liteasr::detail
