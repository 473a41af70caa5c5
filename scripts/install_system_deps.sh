#!/usr/bin/env bash
# Installs the Debian packages named as arguments (default: the packages the
# tests use: asterisk prompts in G.722 and their transcripts, real speech;
# espeak-ng, speech in other languages for language detection)
# when running as root; otherwise says what to run. With --required a missing
# package is an error when it cannot be installed; without it, the tests that
# need it are skipped.
set -euo pipefail
required=0
if [ "${1:-}" = "--required" ]; then required=1; shift; fi
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(asterisk-core-sounds-en-g722 asterisk-core-sounds-en espeak-ng)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
  exit "$required"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
