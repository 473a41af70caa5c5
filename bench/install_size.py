#!/usr/bin/env python3
"""Installed size of the package, runtime alone against the extras: the
disk its virtual environment's site-packages takes (``du``), how many
packages it holds, and the largest of them.

    python bench/install_size.py                     # build the venvs below, measure, remove them
    python bench/install_size.py --venv runtime=/path/to/venv --venv full=.venv --out -

Built by default, each a fresh ``python -m venv`` and a non-editable
``pip install`` of this checkout:

* ``runtime``: ``pip install liteasr-export`` (ONNX Runtime; transcribe and
  eval with ``--engine onnx``);
* ``export``: ``pip install 'liteasr-export[export]'`` (adds torch,
  transformers, the ONNX tooling and the bundled model: ``liteasr-export``);
* ``export+serve``: ``pip install 'liteasr-export[export,serve]'`` (adds Ray:
  every command).

``--venv LABEL=PATH`` measures an existing environment instead (nothing is
built then); ``--with FILE`` adds the entries of an earlier JSON to the
table (CI measures its full venv in one step and the runtime in another).
Writes ``bench/results/install_size.json`` unless ``--out`` says otherwise
(``-``: print only). Standard library only: any ``python3`` runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BUILDS = {"runtime": "", "export": "export", "export+serve": "export,serve"}
#: what ``python -m venv`` puts in every environment (not counted as packages)
VENV_TOOLING = {"pip", "setuptools", "wheel"}
LARGEST = 10

#: run by the environment's own Python: its distributions and the bytes their files take
_LIST_DISTRIBUTIONS = r"""
import json, os, sys, sysconfig
from importlib import metadata
rows = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name or name.lower() in rows:
        continue
    size = 0
    for file in dist.files or ():
        try:
            size += os.stat(dist.locate_file(file)).st_blocks * 512
        except OSError:
            pass
    rows[name.lower()] = {"name": name, "version": dist.version, "bytes": size}
print(json.dumps({"site_packages": sysconfig.get_paths()["purelib"], "python": sys.version.split()[0],
                  "distributions": list(rows.values())}))
"""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _du_bytes(path: Path) -> int:
    """``du -sk``: the disk the folder takes (hard links counted once)."""
    return int(subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]) * 1024


def measure(venv: Path, label: str) -> dict:
    """One environment: site-packages in MB, package count, the largest packages."""
    info = json.loads(subprocess.run([str(_python(venv)), "-c", _LIST_DISTRIBUTIONS], check=True,
                                     capture_output=True, text=True).stdout)
    packages = [d for d in info["distributions"] if d["name"].lower() not in VENV_TOOLING]
    packages.sort(key=lambda d: -d["bytes"])
    return {
        "label": label,
        "python": info["python"],
        "site_packages_mb": round(_du_bytes(Path(info["site_packages"])) / 1e6, 1),
        "packages": len(packages),
        "largest": [{"name": d["name"], "version": d["version"], "mb": round(d["bytes"] / 1e6, 1)}
                    for d in packages[:LARGEST]],
    }


def build(folder: Path, label: str, extras: str) -> dict:
    """A fresh venv with this checkout pip-installed (not editable), measured."""
    venv = folder / label.replace("+", "-")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    spec = f"{ROOT}[{extras}]" if extras else str(ROOT)
    start = time.perf_counter()
    subprocess.run([str(_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec], check=True)
    row = measure(venv, label)
    row["install"] = f"pip install {'liteasr-export' + (f'[{extras}]' if extras else '')}"
    row["install_s"] = round(time.perf_counter() - start, 1)
    return row


def table(rows: list[dict]) -> str:
    width = max([len("venv")] + [len(row["label"]) for row in rows]) + 2
    lines = [f"{'venv':<{width}}{'site-packages':>13}{'packages':>10}  largest (MB)"]
    for row in rows:
        largest = ", ".join(f"{d['name']} {d['mb']:.0f}" for d in row["largest"][:5])
        lines.append(f"{row['label']:<{width}}{row['site_packages_mb']:>10.0f} MB{row['packages']:>10}  {largest}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", action="append", default=[], metavar="LABEL=PATH",
                        help="measure this existing environment (repeatable); nothing is built")
    parser.add_argument("--with", dest="earlier", type=Path, action="append", default=[], metavar="FILE",
                        help="also show the environments of an earlier JSON written by this script")
    parser.add_argument("--keep", type=Path, default=None, help="build the venvs here and keep them")
    parser.add_argument("--out", default=str(RESULTS / "install_size.json"), help="JSON file, or - (print only)")
    args = parser.parse_args()

    rows = []
    for earlier in args.earlier:
        rows += json.loads(earlier.read_text())["venvs"]
    for item in args.venv:
        label, _, path = item.partition("=")
        if not path:
            parser.error(f"--venv wants LABEL=PATH, got {item!r}")
        rows.append({**measure(Path(path), label), "path": path})
    if not args.venv and not args.earlier:
        with tempfile.TemporaryDirectory(prefix="install-size-") as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            for label, extras in BUILDS.items():
                print(f"building {label} ...", file=sys.stderr, flush=True)
                rows.append(build(folder, label, extras))
    print(table(rows))
    if args.out != "-":
        result = {"command": shlex.join(["python", "bench/install_size.py", *sys.argv[1:]]),
                  "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
                  "date": time.strftime("%Y-%m-%d"),
                  "venvs": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
