#!/usr/bin/env bash
# Fetch what the C++ example needs to build against ONNX Runtime, from the
# package registries, into examples/cpp/third_party/onnxruntime (git-ignored):
#
#   include/  ONNX Runtime's C/C++ headers, from Debian trixie's
#             libonnxruntime-dev (bookworm has no such package). The .deb is
#             downloaded with a PRIVATE apt configuration (its own sources
#             list, state and cache under a temporary directory) derived from
#             this machine's Debian sources: the system's apt setup is never
#             changed and nothing is installed.
#   lib/      libonnxruntime.so.1.* from the installed PyPI onnxruntime wheel,
#             plus the libonnxruntime.so and .so.1 links for the linker and
#             the loader. Headers 1.21 link and run against newer libraries
#             (ONNX Runtime's C API is versioned and backward compatible).
#
# Environment: PYTHON (default: the project's .venv, else python3) must import
# onnxruntime; DEB_SUITE (default trixie) is the Debian suite to take the
# headers from. Re-running is cheap: an existing third_party tree is reused
# unless FORCE=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="$here/third_party/onnxruntime"
suite="${DEB_SUITE:-trixie}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi

die() { echo "fetch_deps.sh: error: $*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && [ -f "$dest/include/onnxruntime_cxx_api.h" ] && [ -e "$dest/lib/libonnxruntime.so" ]; then
  echo "fetch_deps.sh: $dest is complete (FORCE=1 to fetch again)"
  exit 0
fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found: this script needs a Debian-based system"
done

# ---------------------------------------------------------------- library (PyPI wheel)
capi="$("$PYTHON" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null)" \
  || die "$PYTHON cannot import onnxruntime; install it with: $PYTHON -m pip install onnxruntime"
shopt -s nullglob
libs=("$capi"/libonnxruntime.so.1.*)
shopt -u nullglob
[ ${#libs[@]} -ge 1 ] || die "no libonnxruntime.so.1.* in $capi; reinstall the onnxruntime wheel"
lib="${libs[0]}"

# ---------------------------------------------------------------- headers (Debian .deb)
# The archive URI and keyring of this machine's own Debian sources (deb822
# .sources files or one-line sources.list entries), first main archive found.
find_debian_source() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() { if (uri != "" && suites ~ /(^| )[a-z]+( |$)/ && comps ~ /main/ && !found) { print uri "|" key; found = 1 } uri = ""; suites = ""; comps = ""; key = "" }
      /^[ \t]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { $1 = ""; suites = $0 }
      /^Components:/ { $1 = ""; comps = $0 }
      /^Signed-By:/ { key = $2 }
      END { flush() }' "$f" | grep -E '/debian/?[|]' && return 0
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [signed-by=KEY] URI SUITE main ...
    awk '$1 == "deb" {
        key = ""; i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { if ($i ~ /signed-by=/) { k = $i; sub(/.*signed-by=/, "", k); key = k } i++ }
                          if ($i ~ /signed-by=/) { k = $i; sub(/.*signed-by=/, "", k); sub(/\]$/, "", k); key = k } i++ }
        if ($(i + 1) !~ /-/ && $0 ~ / main/) { print $i "|" key; exit }
      }' "$f" | grep -E '/debian/?[|]' && return 0
  done
  return 1
}
source_line="$(find_debian_source | head -n 1)" \
  || die "no Debian main archive in /etc/apt/sources.list(.d); download libonnxruntime-dev ($suite) by hand and extract it with dpkg-deb -x"
uri="${source_line%%|*}"
keyring="${source_line#*|}"
[ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "keyring $keyring not found; install debian-archive-keyring"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/sources.list.d" "$work/etc/preferences.d" "$work/etc/apt.conf.d" "$work/etc/trusted.gpg.d" \
         "$work/state/lists/partial" "$work/cache/archives/partial"
: > "$work/state/status"
cat > "$work/etc/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: $keyring
SOURCES
apt_private=(
  -o "Dir::Etc=$work/etc"
  -o "Dir::Etc::sourcelist=$work/etc/sources.list"
  -o "Dir::Etc::sourceparts=$work/etc/sources.list.d"
  -o "Dir::Etc::preferencesparts=$work/etc/preferences.d"
  -o "Dir::Etc::parts=$work/etc/apt.conf.d"
  -o "Dir::State=$work/state"
  -o "Dir::State::status=$work/state/status"
  -o "Dir::Cache=$work/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
echo "fetch_deps.sh: downloading libonnxruntime-dev from $uri $suite (private apt configuration in $work)"
apt-get "${apt_private[@]}" -qq update || die "apt-get update of $uri $suite failed (network or keyring)"
(cd "$work" && apt-get "${apt_private[@]}" -qq download libonnxruntime-dev) \
  || die "libonnxruntime-dev is not in $uri $suite"
deb="$(ls "$work"/libonnxruntime-dev_*.deb)"

rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib"
dpkg-deb -x "$deb" "$work/deb"
header="$(find "$work/deb" -name onnxruntime_cxx_api.h | head -n 1)"
[ -n "$header" ] || die "$(basename "$deb") holds no onnxruntime_cxx_api.h"
cp -r "$(dirname "$header")"/. "$dest/include/"
dpkg-deb -f "$deb" Package Version > "$dest/include/DEBIAN-SOURCE.txt"

cp "$lib" "$dest/lib/"
ln -sf "$(basename "$lib")" "$dest/lib/libonnxruntime.so.1"
ln -sf libonnxruntime.so.1 "$dest/lib/libonnxruntime.so"
"$PYTHON" -c 'import onnxruntime; print("onnxruntime", onnxruntime.__version__, "(PyPI wheel)")' > "$dest/lib/PYPI-SOURCE.txt"
echo "fetch_deps.sh: headers $(tr '\n' ' ' < "$dest/include/DEBIAN-SOURCE.txt")-> $dest/include"
echo "fetch_deps.sh: library $(basename "$lib") -> $dest/lib"
