// sha256 checks of an artifacts folder against its manifest.json, as the
// Python runtime's liteasr_export/integrity.py does, with the same fast path:
// after a full check each file's identity (device, inode, size, mtime and
// ctime in ns) and digest are recorded in a stamp in the user's private cache,
// $XDG_CACHE_HOME/liteasr-export/verified/ (mode 0700; a stamp that another
// user could write is ignored), named after the folder's resolved path and
// bound to its device and inode, so that a later start hashes only files
// whose identity changed. Nothing inside the artifacts folder is trusted.
// Python and C++ share those stamps.
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
/// file that differs or is not listed. Files changed less than `racy_seconds`
/// ago are not recorded (a write in the same timestamp tick would go unseen).
void verify_files(const std::filesystem::path& root, const std::map<std::string, std::string>& expected,
                  const std::vector<std::string>& files, double racy_seconds = 2.0);

}  // namespace liteasr::detail
