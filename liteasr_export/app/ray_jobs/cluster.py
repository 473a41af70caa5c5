"""Where the scale-out commands run: a local Ray instance started for one
command (and stopped when it ends, Ctrl-C included), or an existing cluster
joined by address.

Ray is an optional dependency (``pip install 'liteasr-export[serve]'``): it
is imported here, lazily, and by the modules that use it, never by the rest
of the package.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from liteasr_export.core.errors import EngineUnavailableError, debug_enabled, require_extra
from liteasr_export.core.interrupts import Terminated, keep_signal_handlers

#: ``--ray`` / ``--address`` without a value: start Ray on this machine
LOCAL = "local"


def import_ray(what: str = "running on Ray") -> ModuleType:
    """The ``ray`` module, or a one-line error naming the extra to install
    (``what``: the command or option that needs Ray)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from this tool's Ray instances
    require_extra("serve", what)
    import ray

    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Ray, connected for the duration of the block.

    ``address`` None or :data:`LOCAL`: start a local instance (``num_cpus``:
    its CPUs, default all), dashboard off, and shut it down at the end.
    Otherwise join that cluster (``auto``, ``ray://host:10001``, ``host:6379``)
    and only disconnect. When Ray is already initialized in this process (a
    caller or a test set it up), it is used as it is and left running.

    The process's own SIGTERM / SIGHUP handlers (the CLI's, which unwind like
    Ctrl-C) are put back after ``ray.init`` replaced them, so that the block
    ends and Ray is shut down in order. Ray's and Ray Data's logs, and the
    workers' output, reach the terminal only with ``--debug``."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = address in (None, LOCAL)
    debug = debug_enabled()  # Ray's logs, and its workers' output, only with --debug
    logs = dict(logging_level="INFO" if debug else "ERROR", log_to_driver=debug)
    unwinds = callable(signal.getsignal(signal.SIGTERM))  # the CLI's handler: SIGTERM raises Terminated
    try:
        with keep_signal_handlers():  # SIGTERM unwinds as Ctrl-C does, so that Ray is shut down below
            if local:
                ray.init(num_cpus=num_cpus, include_dashboard=False, **logs)
            else:
                ray.init(address=address, **logs)
    except SystemExit:  # SIGTERM while Ray started: its own handler exits; stop what it started
        ray.shutdown()
        if unwinds:
            raise Terminated(signal.SIGTERM) from None
        raise
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if local else f"the Ray cluster at {address!r}"
        fix = ("check that this machine can start Ray (free ports, /tmp writable)" if local else
               "check the address (ray status on the head node prints it) or drop it to run on this machine")
        raise EngineUnavailableError(f"cannot start or reach {where}: {' '.join(str(exc).split())[:300]}",
                                     fix) from None
    try:
        yield ray
    finally:
        wait_for_data_executors()
        ray.shutdown()


def wait_for_data_executors(timeout: float = 20.0) -> None:
    """Wait (at most ``timeout`` s in all) for Ray Data's executor threads of
    this process to end. Closing a dataset's iterator (a job stopped by a
    signal) stops its executor, but Ray Data waits only 2 s for it; one still
    running after ``ray.shutdown()`` makes Ray's core worker end the whole
    process with exit status 1 (seen on a loaded machine)."""
    try:
        from ray.data._internal.execution.streaming_executor import StreamingExecutor
    except ImportError:  # another Ray version: nothing known to wait for
        return
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if isinstance(thread, StreamingExecutor) and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def cluster_cpus(ray: ModuleType) -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def quiet_data(ray: ModuleType) -> None:
    """Ray Data without its own progress bars and logs: the commands draw one
    tqdm bar of their own."""
    context = ray.data.DataContext.get_current()  # imports Ray Data, which sets up its logger
    # its own lines ("Progress bars disabled", "Dataset ... execution finished") only with --debug
    logging.getLogger("ray.data").setLevel(logging.DEBUG if debug_enabled() else logging.ERROR)
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.raise_original_map_exception = True


def is_address(text: str) -> bool:
    """Whether ``--ray``'s value names a cluster (``auto``, ``local``,
    ``ray://host:port``, ``host:port``) rather than being the first input."""
    return text in ("auto", LOCAL) or text.startswith("ray://") or re.fullmatch(r"[\w.-]+:\d+", text) is not None
