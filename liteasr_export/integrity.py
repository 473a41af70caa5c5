"""sha256 checksums of an artifacts folder: written into manifest.json at
export, verified when a runtime loads the folder.

A full check hashes every file the runtime loads. Afterwards each file's
size, mtime (ns) and digest are recorded in a stamp, so that the next start
hashes only what changed: ``.liteasr-verified.json`` inside the folder, or,
where the folder cannot be written, a file under
``$XDG_CACHE_HOME/liteasr-export/verified/`` named after the folder's path.
A file modified less than :data:`RACY_SECONDS` before the check is not
recorded (a write within the same mtime tick would go unseen), so it is
hashed again next time. The C++ runtime reads and writes the same stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

from .cache import cache_root
from .errors import ArtifactError, IntegrityError

STAMP_NAME = ".liteasr-verified.json"
STAMP_FORMAT = "liteasr-verified/1"
#: files younger than this are hashed at every check (mtime granularity)
RACY_SECONDS = 2.0
#: never listed in the manifest's sha256 section: the manifest itself, the
#: report (written after the checksums) and the stamp (rewritten by checks)
UNCHECKED = ("manifest.json", "report.md", STAMP_NAME)
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(folder: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative paths, sorted), except
    :data:`UNCHECKED`."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in UNCHECKED}


def _cache_stamp(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return cache_root() / "verified" / f"{key}.json"


def _read_stamp(root: Path) -> dict[str, dict]:
    for path in (root / STAMP_NAME, _cache_stamp(root)):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == STAMP_FORMAT and isinstance(data.get("files"), dict):
            return data["files"]
    return {}


def _write_stamp(root: Path, files: dict[str, dict]) -> None:
    """Atomically, in the folder, else in the user's cache; silently nowhere
    when neither can be written (the next start then checks in full)."""
    text = json.dumps({"format": STAMP_FORMAT, "files": files}, indent=1, sort_keys=True) + "\n"
    for path in (root / STAMP_NAME, _cache_stamp(root)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            return
        except OSError:
            continue


def verify_files(root: str | os.PathLike[str], expected: dict[str, str], files: Iterable[str]) -> dict[str, str]:
    """Check that each of ``files`` (paths relative to ``root``) has the sha256
    that ``expected`` (the manifest's ``sha256`` section) records; returns
    their digests. Raises :class:`IntegrityError` on the first difference and
    :class:`ArtifactError` for a file the manifest does not list."""
    root = Path(root)
    stamp = _read_stamp(root)
    changed = False
    now = time.time()
    out: dict[str, str] = {}
    for rel in files:
        want = expected.get(rel)
        if not isinstance(want, str):
            raise ArtifactError(f"{root}/manifest.json records no sha256 for {rel}",
                                "re-export the folder with liteasr-export, or pass --no-verify to skip the check")
        stat = (root / rel).stat()
        seen = stamp.get(rel)
        if seen == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": want}:
            out[rel] = want
            continue
        got = sha256_file(root / rel)
        if got != want:
            raise IntegrityError(f"{root / rel} is corrupt or was modified: its sha256 is {got[:12]}..., "
                                 f"manifest.json records {want[:12]}...",
                                 "copy the folder again or re-export it (--no-verify skips this check)")
        out[rel] = got
        if now - stat.st_mtime > RACY_SECONDS:
            stamp[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": got}
            changed = True
    if changed:
        _write_stamp(root, stamp)
    return out
