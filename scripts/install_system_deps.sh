#!/usr/bin/env bash
# Debian packages the tests use: real speech (asterisk prompts, G.722, with
# transcripts). Installs them when running as root; otherwise says what to run.
set -euo pipefail
packages=(asterisk-core-sounds-en-g722 asterisk-core-sounds-en)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]} (tests that need them are skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
