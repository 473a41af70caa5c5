#!/usr/bin/env python3
"""The default exports as a new user meets them, environment by environment:
exit code, encoder size chosen, the quality gate (increase ± its standard
error per set), stage times and minutes, for each environment x command.

    python bench/first_run.py --models tiny.en base --envs full no-asterisk offline --threads 2 1

Environments (speech the export can calibrate and check on):

* ``full``: fotaq (the fetched archive), the Debian Asterisk prompts, builtin;
* ``no-asterisk``: fotaq and builtin (the Debian packages not installed);
* ``offline``: builtin only (no Debian packages, nothing fetched).

Every run starts from an empty cache (its own ``XDG_CACHE_HOME``: no
calibration statistics, sensitivities or dense transcripts from an earlier
run), so its time is a first run's. The fotaq archive is named through
``LITEASR_FOTAQ_ARCHIVE`` instead of being downloaded again (its clips are
still decoded into the empty cache). The command is the README's:
``liteasr-export --model M --output OUT`` with every other option at its
default (``--threads N`` added). Writes ``bench/results/first_run.json``
after each run; a run already recorded there is skipped (``--again`` reruns).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ENVS = ("full", "no-asterisk", "offline")


def environment(name: str, work: Path) -> dict[str, str]:
    """The process environment of one run: its own empty cache, and the
    speech sources the environment ``name`` lacks hidden."""
    from calibration import fotaq
    from calibration.datasets import ASTERISK_SOUNDS_ENV

    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"), PYTHONUNBUFFERED="1")
    env[fotaq.NO_FETCH_ENV] = "1"
    archive = fotaq.find_archive()
    if name in ("full", "no-asterisk"):
        if archive is None:
            raise SystemExit(f"environment {name} needs the fotaq archive: python -m calibration.fotaq fetch")
        env[fotaq.ARCHIVE_ENV] = str(archive)
    else:
        env[fotaq.ARCHIVE_ENV] = str(work / "no-fotaq" / "queen.1c")
    if name != "full":
        (work / "no-asterisk").mkdir(parents=True, exist_ok=True)
        env[ASTERISK_SOUNDS_ENV] = str(work / "no-asterisk")
    return env


def summarize(manifest: dict) -> dict:
    """What a run's manifest says of the choice and the gate."""
    validation = manifest.get("validation") or {}
    gate = validation.get("quality") or {}
    sets = {}
    for s in gate.get("sets", []):
        for backend, increase in s.get("increase", {}).items():
            sets[s["name"]] = {"dense_wer": s["dense_wer"], "wer": s["wer"][backend], "increase": increase,
                               "se": s["increase_se"][backend], "units": s.get("units")}
    compression = manifest.get("compression") or {}
    return {"size_ratio": compression.get("size_ratio", 1.0), "gate_passed": gate.get("passed"),
            "passed_with_margin": gate.get("passed_with_margin"), "sets": sets,
            "steps": [{"size_ratio": s["size_ratio"], "passed_with_margin": s["passed_with_margin"]}
                      for s in validation.get("default_size_steps", [])],
            "stage_seconds": manifest.get("timings_s", {})}


def run(model: str, env_name: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        work = Path(tmp)
        out = work / "out"
        command = [str(Path(sys.executable).with_name("liteasr-export")), "--model", model, "--output", str(out),
                   "--threads", str(threads)]
        start = time.perf_counter()
        proc = subprocess.run(command, env=environment(env_name, work), capture_output=True, text=True)
        minutes = (time.perf_counter() - start) / 60
        record = {"model": model, "env": env_name, "threads": threads, "exit": proc.returncode,
                  "minutes": round(minutes, 2), "command": " ".join(["liteasr-export"] + command[1:]).replace(
                      str(out), "OUT")}
        if (out / "manifest.json").is_file():
            record.update(summarize(json.loads((out / "manifest.json").read_text())))
        else:
            record["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        record["lines"] = [line for line in proc.stdout.splitlines()
                           if line.startswith(("quality gate", "default size", "encoder size", "  "))][-20:]
        return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en"])
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS))
    parser.add_argument("--threads", nargs="+", type=int, default=[2])
    parser.add_argument("--output", type=Path, default=RESULTS / "first_run.json")
    parser.add_argument("--again", action="store_true", help="rerun runs already in the output")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if not shutil.which("liteasr-export", path=str(Path(sys.executable).parent)):
        raise SystemExit("run with the project's venv: .venv/bin/python bench/first_run.py")
    data = json.loads(args.output.read_text()) if args.output.is_file() else {"runs": []}
    done = {(r["model"], r["env"], r["threads"]) for r in data["runs"]}
    for model in args.models:
        for env_name in args.envs:
            for threads in args.threads:
                if (model, env_name, threads) in done and not args.again:
                    continue
                record = run(model, env_name, threads)
                data["runs"] = [r for r in data["runs"] if (r["model"], r["env"], r["threads"]) !=
                                (model, env_name, threads)] + [record]
                data["load_average_at_end"] = os.getloadavg()
                args.output.write_text(json.dumps(data, indent=1) + "\n")
                sets = ", ".join(f"{k} {v['increase']:+.2f}±{v['se']:.2f}" for k, v in record.get("sets", {}).items())
                print(f"{model:8s} {env_name:12s} threads {threads}: exit {record['exit']}, "
                      f"encoder {100 * record.get('size_ratio', float('nan')):.1f} %, "
                      f"{record['minutes']:.1f} min; {sets or record.get('error', '')}", flush=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
