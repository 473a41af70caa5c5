// sha256 checks of an artifacts folder against its manifest.json, as the
// Python runtime's liteasr_export/integrity.py does, with the same fast path:
// after a full check each file's size, mtime (ns) and digest are recorded in
// .liteasr-verified.json inside the folder (or, where the folder cannot be
// written, under $XDG_CACHE_HOME/liteasr-export/verified/), so that a later
// start hashes only files that changed. Python and C++ share that stamp.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace liteasr::detail {

/// Hex sha256 of a file (OpenSSL's libcrypto); throws liteasr::Error when unreadable.
std::string sha256_file(const std::filesystem::path& path);

/// Hex sha256 of bytes in memory.
std::string sha256_hex(const std::string& bytes);

/// Each of `files` (relative to `root`) must have the digest `expected` (the
/// manifest's sha256 section) records; throws liteasr::Error naming the first
/// file that differs or is not listed.
void verify_files(const std::filesystem::path& root, const std::map<std::string, std::string>& expected,
                  const std::vector<std::string>& files);

}  // namespace liteasr::detail
