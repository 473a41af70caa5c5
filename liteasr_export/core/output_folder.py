"""The output folder of ``liteasr-export``, written so that no run destroys
data: only a folder this tool wrote is ever replaced, a lock keeps two runs
off the same folder, and the replacement is atomic.

Layout next to ``OUT`` while a run holds it::

    .OUT.lock       the lock (filelock), removed when the run ends
    .OUT.tmp-PID    the new export, built stage by stage
    .OUT.old-PID    the previous export, moved aside (only where the file
                    system cannot exchange two folders atomically)

Replacing: on Linux the new folder and ``OUT`` trade places in one
``renameat2(RENAME_EXCHANGE)`` call, so ``OUT`` always holds the old export
or the new one, complete. Elsewhere the old folder is moved aside, the new
one renamed in, then the old one deleted; a run killed between the two
renames leaves ``OUT`` missing and the old export aside, and the next run
(under the lock) moves it back. Any other leftover of a killed run is
deleted by the next run that takes the lock: while it holds the lock no
other run can be writing them.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from filelock import FileLock, Timeout

from liteasr_export.core.errors import OutputBusyError, OutputError
from liteasr_export.core.interrupts import deferred_signals, pause_point

MANIFEST_NAME = "manifest.json"
#: manifests this tool writes carry ``"format": "liteasr-export/<major>"``
FORMAT_PREFIX = "liteasr-export/"


def _short(path: str | os.PathLike[str]) -> str:
    """A path as a message shows it: whole, or its ends when it is very long."""
    text = os.fsdecode(path)
    return text if len(text) <= 160 else f"{text[:100]}...{text[-40:]}"


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the system refuses ``path`` (a name too long, a loop of links, no
    permission), with the fix; None when it takes it. A path that does not
    exist yet must still have names the file system that will hold it takes."""
    try:
        os.stat(path)
        return None
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            return f"{_short(path)}: {exc.strerror}"
        return _too_long(path)
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if any(len(os.fsencode(part)) > limit for part in Path(path).parts):
        return _too_long(path)
    return None


def _too_long(path: str | os.PathLike[str]) -> str:
    return (f"{_short(path)}: the name is too long for the file system; use shorter file and folder names "
            "(most file systems take 255 bytes per name)")


def check_output_file(path: str | os.PathLike[str], name: str, inputs: Iterable[str | os.PathLike[str]] = (),
                      folder: bool = True) -> None:
    """A file this tool writes can go to ``path``: the file system takes the
    name, no folder is there, it is none of ``inputs`` (no input is ever
    written over) and (``folder``) its folder exists or can be created and
    is writable. The one check of every output file; changes nothing on disk.
    Errors name the parameter ``name`` (``save_stats``), whose path it is."""
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise OutputError(f"`{name}`: cannot write {problem}", field=name)
    if path.is_dir():
        raise OutputError(f"`{name}`: {_short(path)} is a folder, and a file would be written there",
                          f"move that folder away, or choose another `{name}`", field=name)
    if path.exists():
        target = path.stat()
        for item in inputs:
            try:
                same = os.path.samestat(target, os.stat(item))
            except OSError:
                continue
            if same:
                raise OutputError(f"`{name}`: writing {_short(path)} would replace the input {_short(item)}",
                                  f"choose another `{name}`, or rename the input", field=name)
    if folder:
        check_writable_folder(path.parent, name)


def check_writable_folder(folder: str | os.PathLike[str], name: str) -> None:
    """``folder`` exists as a folder or can be created, and files can be
    written in it (probed with a temporary file, as root ignores mode bits)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"`{name}`: {folder} is a file, not a folder", f"choose another `{name}`", field=name)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"`{name}`: cannot create {folder}, {existing} is a file", f"choose another `{name}`", field=name)
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".liteasr-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"`{name}`: cannot write in {existing} ({exc.strerror})",
                          f"choose a `{name}` on a writable file system, in a folder you may write",
                          field=name) from None


def is_export_folder(path: Path) -> bool:
    """True for a folder whose manifest.json was written by liteasr-export."""
    try:
        data = json.loads((Path(path) / MANIFEST_NAME).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith(FORMAT_PREFIX)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output(out: Path, force: bool) -> None:
    """Refuse an ``output`` folder that must not be replaced, and probe that the
    folder that will hold it can be written. Changes nothing on disk."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise OutputError(f"`output` {out} is a file, not a folder",
                              "choose another `output` (liteasr-export never replaces a file)", field="output")
        if not force:
            raise OutputError(f"output folder {out} exists", "pass `force=True` to replace it, or choose another "
                              "`output`", field="output")
        if not (is_export_folder(out) or _is_empty_dir(out)):
            raise OutputError(f"{out} is not a liteasr-export output (it has no manifest.json written by this tool), "
                              "and `force=True` replaces only those",
                              "choose another `output`, or move that folder away yourself", field="output")
    check_writable_folder(out.parent, "output")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with RENAME_EXCHANGE).

    False where the C library, kernel or file system cannot; no PyPI package
    wraps this call, hence ctypes."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` so a rename never publishes
    data that a power loss could still take back."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


class OutputFolder:
    """Holds ``OUT`` for one run: ``open()`` takes the lock, clears what killed
    runs left and creates the temporary folder ``tmp``; ``commit()`` puts it
    in place of ``OUT``; ``close()`` removes what was not committed and
    releases the lock. Use it as a context manager or call open/close."""

    def __init__(self, out: str | os.PathLike[str], force: bool = False) -> None:
        self.out = Path(out)
        self.force = force
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        self.lock_path = self.out.parent / f".{self.out.name}.lock"
        self.committed = False
        self._lock = None
        self._created: list[Path] = []

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> OutputFolder:
        check_output(self.out, self.force)
        parent = self.out.parent
        while not parent.exists():
            self._created.insert(0, parent)
            parent = parent.parent
        try:
            for folder in self._created:
                folder.mkdir()
            lock = FileLock(str(self.lock_path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise OutputBusyError(f"another liteasr-export is writing {self.out}",
                                      "wait for it to finish, or choose another `output`", field="output") from None
            self._lock = lock
            self._recover()
            check_output(self.out, self.force)  # again, now that nobody else can change it
            self.tmp.mkdir()
        except BaseException:
            self.close()
            raise
        return self

    def _leftovers(self) -> list[Path]:
        pattern = re.compile(rf"^\.{re.escape(self.out.name)}\.(tmp|old)-\d+$")
        return sorted(p for p in self.out.parent.glob(f".{glob.escape(self.out.name)}.*-*") if pattern.match(p.name))

    def _recover(self) -> None:
        """Undo what killed runs left: a previous export moved aside goes back
        to OUT when OUT is missing; every other leftover is deleted."""
        leftovers = self._leftovers()
        olds = [p for p in leftovers if ".old-" in p.name]
        if olds and not (self.out.exists() or self.out.is_symlink()):
            newest = max(olds, key=lambda p: p.stat().st_mtime_ns)
            os.rename(newest, self.out)
            leftovers.remove(newest)
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self) -> None:
        """Put the finished temporary folder in place of OUT (see the module doc)."""
        _fsync_tree(self.tmp)
        pause_point("commit")
        old = None
        with deferred_signals():
            if self.out.exists() or self.out.is_symlink():
                check_output(self.out, self.force)
                if _exchange(self.tmp, self.out):
                    old = self.tmp  # it now holds the previous export
                    pause_point("exchanged")
                else:
                    old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                    os.rename(self.out, old)
                    pause_point("moved-aside")
                    os.rename(self.tmp, self.out)
            else:
                os.rename(self.tmp, self.out)
            self.committed = True
            _fsync(self.out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        """Remove the uncommitted temporary folder and the folders this run
        created for it, and release the lock (its file is removed first, which
        filelock's acquire detects, so no other run can lock a stale file)."""
        if self._lock is not None:
            if not self.committed:
                shutil.rmtree(self.tmp, ignore_errors=True)
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
            self._lock.release()
            self._lock = None
        if not self.committed:
            for folder in reversed(self._created):
                try:
                    folder.rmdir()
                except OSError:
                    break
