#!/usr/bin/env bash
# CI's "first run": the README's quick start (`make demo`) the way a new user
# meets it: a fresh clone of this repository, no Debian speech packages (the
# Asterisk prompt folders pointed at an empty one, so prompts installed on the
# machine are not seen), an empty cache and downloading off (so no fotaq
# speech: the offline case). It must exit 0 and leave out/tiny.en/manifest.json.
# The pip cache is kept (a new user's pip downloads the same packages).
#
# LITEASR_FIRST_RUN_KEEP=DIR keeps what later steps reuse (the clone is
# removed): the export moved to DIR/tiny.en (.ci/runtime_only.sh transcribes
# with it instead of exporting again) and the size of the venv `make demo`
# made, DIR/full_venv_size.json (bench/install_size.py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/liteasr-first-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
mkdir -p "$work/cache" "$work/no-asterisk"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
export XDG_CACHE_HOME="$work/cache" LITEASR_NO_FETCH=1 LITEASR_ASTERISK_SOUNDS="$work/no-asterisk"
start=$(date +%s)
(cd "$work/clone" && make demo)
echo "first run: make demo exited 0 after $(( $(date +%s) - start )) s (venv and install included)"
manifest="$work/clone/out/tiny.en/manifest.json"
test -f "$manifest" || { echo "first run: $manifest is missing" >&2; exit 1; }
"$work/clone/.venv/bin/python" - "$manifest" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
gate = m["validation"]["quality"]
assert gate["passed"] and not m["degraded"], "the demo's export is marked degraded"
size = m["compression"]["size_ratio"] if m.get("compression") else 1.0
print(f"first run: encoder {100 * size:.1f} % of dense, gate passed"
      f"{' with margin' if gate.get('passed_with_margin') else ''}; stage times (s): {m['timings_s']}")
PY
if [ -n "${LITEASR_FIRST_RUN_KEEP:-}" ]; then
  keep="$LITEASR_FIRST_RUN_KEEP"
  mkdir -p "$keep"
  rm -rf "$keep/tiny.en"
  mv "$work/clone/out/tiny.en" "$keep/tiny.en"
  python3 "$repo/bench/install_size.py" --venv "make demo (.[dev], editable)=$work/clone/.venv" \
    --out "$keep/full_venv_size.json" >/dev/null
  echo "first run: kept the export in $keep/tiny.en"
fi
