"""liteasr-export never destroys data: --force replaces only an export, the
replacement is atomic (runs killed at each step leave the old export or the
new one, complete), a lock keeps two runs off one folder, SIGTERM cleans up
like Ctrl-C.

The kill cases run the real CLI in a subprocess that pauses at a named point
($LITEASR_PAUSE_AT, see liteasr_export/interrupts.py) and signal it there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liteasr_export.core import output_folder
from liteasr_export.app.cli import export_main
from liteasr_export.core.errors import EXIT_BUSY, EXIT_INTERRUPTED, EXIT_TERMINATED, OutputBusyError, OutputError
from liteasr_export.core.integrity import checksums
from liteasr_export.core.interrupts import PAUSE_ENV
from liteasr_export.core.output_folder import OutputFolder

EXPORT = "import sys; from liteasr_export.app.cli import export_main; sys.exit(export_main(sys.argv[1:]))"
#: the same, on a file system without RENAME_EXCHANGE (the move-aside path)
EXPORT_WITHOUT_EXCHANGE = ("import sys, liteasr_export.core.output_folder as f; f._exchange = lambda a, b: False; "
                           "from liteasr_export.app.cli import export_main; sys.exit(export_main(sys.argv[1:]))")


def _args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--output", str(out), "--no-compress", "--no-validate", "--quiet", *extra]


def assert_complete(out: Path) -> dict:
    """OUT is an export whose files are exactly those its manifest lists, intact."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert checksums(out) == manifest["sha256"]
    return manifest


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def old_export(random_hf_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("old") / "out"
    assert export_main(_args(random_hf_dir, out)) == 0
    return out


@pytest.fixture()
def out(old_export, tmp_path) -> Path:
    """A copy of the old export, to be replaced."""
    path = tmp_path / "out"
    shutil.copytree(old_export, path)
    return path


@pytest.fixture()
def start_paused(default_sigint):
    """``start_paused(args, point, code=EXPORT)``: start an export and return
    once it waits at ``point``."""

    def start(args: list[str], point: str, code: str = EXPORT) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, PAUSE_ENV: point}, preexec_fn=default_sigint)
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if f"paused at {point}" in line:
                return proc
        raise AssertionError(f"the export ended (exit {proc.wait()}) before pausing at {point}: "
                             f"{''.join(seen)[-2000:]}")

    return start


def kill(proc: subprocess.Popen, signum: int) -> tuple[int, str]:
    os.kill(proc.pid, signum)
    rest = proc.stderr.read()
    return proc.wait(timeout=60), rest


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGINT, EXIT_INTERRUPTED)])
def test_signal_during_a_stage_keeps_the_old_export_and_cleans_up(random_hf_dir, out, signum, code, start_paused):
    before = (out / "manifest.json").read_bytes()
    proc = start_paused(_args(random_hf_dir, out, "--force"), "export")
    assert leftovers(out)  # the lock and the temporary folder exist while it runs
    rc, err = kill(proc, signum)
    assert rc == code
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (out / "manifest.json").read_bytes() == before
    assert_complete(out)
    assert leftovers(out) == []  # no temporary folder, no lock file


def test_kill_before_the_swap_keeps_the_old_export(random_hf_dir, out, start_paused):
    before = (out / "manifest.json").read_bytes()
    proc = start_paused(_args(random_hf_dir, out, "--force"), "commit")
    kill(proc, signal.SIGKILL)
    assert (out / "manifest.json").read_bytes() == before
    assert_complete(out)
    assert any(".tmp-" in name for name in leftovers(out))  # the new export, never put in place
    OutputFolder(out, force=True).open().close()  # the next run clears it
    assert leftovers(out) == [] and (out / "manifest.json").read_bytes() == before


def test_kill_right_after_the_swap_leaves_the_new_export(random_hf_dir, out, start_paused):
    if not output_folder._exchange(out, out):  # swapping a path with itself is a no-op that says if it works
        pytest.skip("this file system has no RENAME_EXCHANGE")
    before = (out / "manifest.json").read_bytes()
    proc = start_paused(_args(random_hf_dir, out, "--force"), "exchanged")
    kill(proc, signal.SIGKILL)
    assert (out / "manifest.json").read_bytes() != before
    assert_complete(out)
    OutputFolder(out, force=True).open().close()  # the old export, swapped out, is deleted
    assert leftovers(out) == []
    assert_complete(out)


def test_kill_between_the_two_renames_is_recovered(random_hf_dir, out, start_paused):
    """Without RENAME_EXCHANGE, OUT is missing for a moment; the next run puts
    the old export back."""
    before = (out / "manifest.json").read_bytes()
    proc = start_paused(_args(random_hf_dir, out, "--force"), "moved-aside", code=EXPORT_WITHOUT_EXCHANGE)
    kill(proc, signal.SIGKILL)
    assert not out.exists()
    aside = [p for p in out.parent.iterdir() if ".old-" in p.name]
    assert len(aside) == 1 and assert_complete(aside[0])
    OutputFolder(out, force=True).open().close()
    assert (out / "manifest.json").read_bytes() == before
    assert_complete(out)
    assert leftovers(out) == []


def test_fallback_replacement_completes(random_hf_dir, out):
    before = (out / "manifest.json").read_bytes()
    result = subprocess.run([sys.executable, "-c", EXPORT_WITHOUT_EXCHANGE, *_args(random_hf_dir, out, "--force")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "torchvision" not in result.stderr and "warning" not in result.stderr.lower()  # no library noise
    assert (out / "manifest.json").read_bytes() != before
    assert_complete(out)
    assert leftovers(out) == []


def test_second_export_to_the_same_output_is_refused(random_hf_dir, out, capsys, start_paused):
    before = (out / "manifest.json").read_bytes()
    proc = start_paused(_args(random_hf_dir, out, "--force"), "load")
    try:
        assert export_main(_args(random_hf_dir, out, "--force")) == EXIT_BUSY
        assert "another liteasr-export is writing" in capsys.readouterr().err
    finally:
        kill(proc, signal.SIGTERM)
    assert (out / "manifest.json").read_bytes() == before and leftovers(out) == []


def test_force_replaces_only_an_export(random_hf_dir, tmp_path, capsys):
    folder = tmp_path / "X"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "notes").write_text("x")
    assert export_main(_args(random_hf_dir, folder, "--force")) == 2
    assert "not a liteasr-export output" in capsys.readouterr().err
    assert (folder / "src" / "notes").read_text() == "x" and leftovers(folder) == []
    (folder / "manifest.json").write_text(json.dumps({"format": "other-tool/1"}))
    assert export_main(_args(random_hf_dir, folder, "--force")) == 2  # someone else's manifest
    assert (folder / "src" / "notes").read_text() == "x"


def test_lock_is_exclusive_and_removed(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    first = OutputFolder(out).open()
    try:
        with pytest.raises(OutputBusyError, match="another liteasr-export is writing"):
            OutputFolder(out).open()
        assert first.tmp.is_dir() and first.lock_path.is_file()
    finally:
        first.close()
    assert not (tmp_path / "a").exists()  # folders created for the run, removed with it


def test_commit_replaces_an_export_and_an_empty_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for content in ("new", "newer"):
        with OutputFolder(out, force=True) as folder:
            (folder.tmp / "manifest.json").write_text(json.dumps({"format": "liteasr-export/1", "v": content}))
            folder.commit()
        assert json.loads((out / "manifest.json").read_text())["v"] == content
        assert leftovers(out) == []


def test_output_checks_refuse_before_any_write(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        OutputFolder(tmp_path / "file", force=True).open()
    with pytest.raises(OutputError, match="is a file"):
        OutputFolder(tmp_path / "file" / "out").open()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_read_only_file_system_is_refused_up_front(random_hf_dir, tmp_path):
    """A real read-only mount, in a private mount namespace (needs unshare -m)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("cannot create a mount namespace here")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount -t tmpfs -o ro none {ro} && exec {sys.executable} -c '{EXPORT}' "
              + " ".join(_args(random_hf_dir, ro / "out")))
    start = time.time()
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Read-only file system" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.time() - start < 120
