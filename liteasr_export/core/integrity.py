"""sha256 checksums of an artifacts folder: written into manifest.json at
export, verified when a runtime loads the folder.

A full check hashes every file the runtime loads. Afterwards each file's
identity (device, inode, size, mtime and ctime in ns) and digest are recorded
in a *stamp*, so that the next start hashes only files whose identity
changed. The stamp is trusted only because of where it lies: in the user's
own cache, ``$XDG_CACHE_HOME/liteasr-export/verified/`` (mode 0700), one file
per artifacts folder named after the folder's resolved path and bound to the
folder's device and inode; a stamp that another user could have written (not
owned by this user, or writable by group or others) is ignored. Nothing in
the artifacts folder vouches for it, so a stamp cannot be forged by whoever
can write the folder, and none travels with a copy. ctime and inode cannot
be set by a user: ``touch -r`` restores an mtime but moves the ctime, and a
copy (``cp -a``) or a replaced file has new inodes. A file changed less than
:data:`RACY_SECONDS` before the check is not recorded (a write within the
same timestamp tick would go unseen), so it is hashed again next time.
The C++ runtime (examples/cpp/src/integrity.cpp) reads and writes the same
stamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as statmod
import tempfile
import time
from pathlib import Path
from typing import Iterable

from liteasr_export.core.cache import cache_root
from liteasr_export.core.errors import ArtifactError, IntegrityError

STAMP_FORMAT = "liteasr-verified/2"
#: where format 1 kept its stamp, inside the folder; never read any more
LEGACY_STAMP_NAME = ".liteasr-verified.json"
#: files changed more recently than this are hashed at every check (timestamp granularity)
RACY_SECONDS = 2.0
#: stamps not rewritten for this long are removed when another stamp is written
STAMP_MAX_AGE_S = 30 * 86400
#: never listed in the manifest's sha256 section: the manifest itself and the
#: report (written after the checksums), and a stamp format 1 left in the folder
UNCHECKED = ("manifest.json", "report.md", LEGACY_STAMP_NAME)
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


def stamp_dir() -> Path:
    """The user's private folder of stamps."""
    return cache_root() / "verified"


def stamp_path(root: str | os.PathLike[str]) -> Path:
    """The stamp of the artifacts folder ``root``: named after its resolved path."""
    key = hashlib.sha256(os.fsencode(Path(root).resolve())).hexdigest()[:24]  # the path's bytes, as C++ hashes them
    return stamp_dir() / f"{key}.json"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (statmod.S_IWGRP | statmod.S_IWOTH)


def _identity(st: os.stat_result) -> dict[str, int]:
    """What a user cannot set without the file changing (ctime, inode,
    device), with size and mtime."""
    return {"device": st.st_dev, "inode": st.st_ino, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _read_stamp(root: Path, folder: os.stat_result) -> dict[str, dict]:
    """The files a private stamp records for this very folder, else nothing."""
    path = stamp_path(root)
    try:
        if not (_private(os.stat(path.parent)) and _private(os.stat(path))):
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not (isinstance(data, dict) and data.get("format") == STAMP_FORMAT and isinstance(data.get("files"), dict)):
        return {}
    if (data.get("root"), data.get("device"), data.get("inode")) != (str(root.resolve()), folder.st_dev, folder.st_ino):
        return {}
    return data["files"]


def _write_stamp(root: Path, folder: os.stat_result, files: dict[str, dict]) -> None:
    """Atomically, mode 0600 in the 0700 stamp folder; silently nowhere when
    the cache cannot be written (the next start then checks in full)."""
    path = stamp_path(root)
    text = json.dumps({"format": STAMP_FORMAT, "root": str(root.resolve()), "device": folder.st_dev,
                       "inode": folder.st_ino, "files": files}, indent=1, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return
    _prune(path.parent, keep=path)


def _prune(folder: Path, keep: Path) -> None:
    """Remove stamps nobody rewrote for :data:`STAMP_MAX_AGE_S` (folders
    deleted or moved long ago); a live folder's is simply made again."""
    cutoff = time.time() - STAMP_MAX_AGE_S
    try:
        for entry in os.scandir(folder):
            if entry.name.endswith(".json") and entry.path != str(keep) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
    except OSError:
        pass


def verify_files(root: str | os.PathLike[str], expected: dict[str, str], files: Iterable[str]) -> dict[str, str]:
    """Check that each of ``files`` (paths relative to ``root``) has the sha256
    that ``expected`` (the manifest's ``sha256`` section) records; returns
    their digests. Raises :class:`IntegrityError` on the first difference and
    :class:`ArtifactError` for a file the manifest does not list."""
    root = Path(root)
    folder = os.stat(root)
    stamp = _read_stamp(root, folder)
    changed = False
    now = time.time()
    out: dict[str, str] = {}
    for rel in files:
        want = expected.get(rel)
        if not isinstance(want, str):
            raise ArtifactError(f"{root}/manifest.json records no sha256 for {rel}",
                                "re-export the folder with liteasr-export, or pass `verify=False` to skip the check",
                                field="verify")
        st = (root / rel).stat()
        seen = {**_identity(st), "sha256": want}
        if stamp.get(rel) == seen:
            out[rel] = want
            continue
        got = sha256_file(root / rel)
        if got != want:
            raise IntegrityError(f"{root / rel} is corrupt or was modified: its sha256 is {got[:12]}..., "
                                 f"manifest.json records {want[:12]}...",
                                 "copy the folder again or re-export it (`verify=False` skips this check)", field="verify")
        out[rel] = got
        if now - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > RACY_SECONDS:
            stamp[rel] = seen
            changed = True
    if changed:
        _write_stamp(root, folder, stamp)
    return out
