#!/usr/bin/env bash
# Installs the Debian packages named as arguments (default: the packages the
# tests use: asterisk prompts in G.722 and their transcripts, real speech in
# English, Spanish, French and Italian; festival and its two Italian voices,
# espeak-ng: generated speech in other languages (synth-es, synth-fr, synth-it,
# language detection))
# when running as root; otherwise says what to run. With --required a missing
# package is an error when it cannot be installed; without it, the tests that
# need it are skipped.
set -euo pipefail
required=0
if [ "${1:-}" = "--required" ]; then required=1; shift; fi
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(asterisk-core-sounds-en-g722 asterisk-core-sounds-en espeak-ng
  asterisk-core-sounds-es-g722 asterisk-core-sounds-es asterisk-core-sounds-fr-g722 asterisk-core-sounds-fr
  asterisk-core-sounds-it-g722 asterisk-core-sounds-it festival festvox-italp16k festvox-itapc16k)
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
