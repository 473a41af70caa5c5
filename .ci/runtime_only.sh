#!/usr/bin/env bash
# CI's runtime-only install: `pip install liteasr-export` (no extras) the way a
# user who only transcribes meets it. A fresh venv and a non-editable install
# of a clean clone of this repository; then torch, transformers and onnx must
# be missing, liteasr-transcribe and liteasr-eval --engine onnx must work on
# an export made elsewhere (the bundled speech clips are package data), the C++
# example's test data must be writable (its Python side), and liteasr-export
# must exit 2 with one line naming the export extra. Prints the installed size
# next to the full venv's (bench/install_size.py).
#
#   bash .ci/runtime_only.sh ARTIFACTS [FULL_VENV_SIZE.json]
#
# ARTIFACTS: a folder written by liteasr-export (in CI, the one .ci/first_run.sh
# kept: LITEASR_FIRST_RUN_KEEP); it is read, never written. FULL_VENV_SIZE.json:
# the full venv's size as bench/install_size.py wrote it (optional).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
artifacts=${1:?usage: runtime_only.sh ARTIFACTS [FULL_VENV_SIZE.json]}
full_size=${2:-}
artifacts=$(cd "$artifacts" && pwd)
test -f "$artifacts/manifest.json" || { echo "runtime only: no manifest.json in $artifacts" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/liteasr-runtime-only.XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { echo "runtime only: $*"; }
fail() { echo "runtime only: FAILED: $*" >&2; exit 1; }
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
export XDG_CACHE_HOME="$work/cache" LITEASR_NO_FETCH=1

start=$(date +%s)
git clone -q "$repo" "$work/clone"
python3 -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip install -q --disable-pip-version-check "$work/clone"
say "pip install liteasr-export took $(( $(date +%s) - start )) s"

# no torch, transformers or ONNX tooling
for module in torch transformers onnx; do
  if "$bin/python" -c "import $module" 2>/dev/null; then fail "import $module works in the runtime venv"; fi
done
say "torch, transformers and onnx are not installed"

# run from elsewhere, so that nothing is imported from the clone
cd "$work"
clip=$("$bin/python" -c 'from calibration.datasets import resolve_set; print(resolve_set("builtin", "eval")[0].audio)')
case "$clip" in "$work/venv/"*) ;; *) fail "the bundled clip $clip is not the installed package's";; esac
text=$("$bin/liteasr-transcribe" --engine onnx --artifacts "$artifacts" "$clip")
[ -n "${text// /}" ] || fail "liteasr-transcribe printed an empty transcript for $clip"
say "liteasr-transcribe --engine onnx $(basename "$clip"): $text"

"$bin/liteasr-eval" --engine onnx --artifacts "$artifacts" --eval builtin --limit 4 --json > "$work/eval.json"
"$bin/python" - "$work/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n"] == 4 and r["wer"] < 50, r
print(f"runtime only: liteasr-eval --engine onnx --eval builtin --limit 4: WER {r['wer']:.2f}% on {r['n']} clips")
PY

# the C++ example's test data (its Python side), with the runtime alone
"$bin/python" "$work/clone/examples/cpp/tests/make_expected.py" --artifacts "$artifacts" --out "$work/cpp-data" \
  --clips 2 > "$work/make_expected.log" || { cat "$work/make_expected.log" >&2; fail "make_expected.py"; }
test -s "$work/cpp-data/expected.txt" || fail "make_expected.py wrote no expected.txt"
say "examples/cpp/tests/make_expected.py wrote $(wc -l < "$work/cpp-data/expected.txt") expected transcripts"

# a command that needs an extra says which, in one line, and exits 2
set +e
"$bin/liteasr-export" --model tiny.en --output "$work/export" 2> "$work/export.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "liteasr-export exited $rc, not 2: $(cat "$work/export.err")"
[ "$(wc -l < "$work/export.err")" -eq 1 ] || fail "liteasr-export printed more than one line: $(cat "$work/export.err")"
grep -q "pip install 'liteasr-export\[export\]'" "$work/export.err" || fail "liteasr-export: $(cat "$work/export.err")"
[ ! -e "$work/export" ] || fail "liteasr-export created its output folder"
say "liteasr-export exits 2: $(cat "$work/export.err")"

with=()
[ -n "$full_size" ] && [ -f "$full_size" ] && with=(--with "$full_size")
python3 "$repo/bench/install_size.py" --venv "runtime (pip install liteasr-export)=$work/venv" "${with[@]}" --out -
say "passed in $(( $(date +%s) - start )) s"
