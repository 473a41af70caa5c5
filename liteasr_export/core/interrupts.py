"""Signals: SIGTERM and SIGHUP end a run the way Ctrl-C does (the exception
unwinds, temporary files are removed, the Ray instance a command started is
shut down), a library that installs its own handlers (Ray) gets them taken
back, a critical section can hold them back, and a test hook pauses a run at
a named point so that a test can kill it exactly there.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

#: set to a point's name (e.g. ``export``, ``commit``) to make the process stop
#: there and wait to be signalled; tests use it to kill a run at a chosen stage
PAUSE_ENV = "LITEASR_PAUSE_AT"
_HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; unwinds like KeyboardInterrupt (cleanup runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame) -> None:  # noqa: ARG001 (signal handler signature)
    raise Terminated(signum)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`.

    Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_terminated) for s in _HANDLED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back during a few renames that must not
    be split; they are delivered when the block ends (SIGKILL cannot be held)."""
    held = {signal.SIGINT, *_HANDLED}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """Put this process's own SIGINT, SIGTERM and SIGHUP handlers back after
    a library replaced them in the block: ``ray.init`` installs a SIGTERM
    handler that exits with status 15 or 1 without unwinding (so a service
    is not shut down in order) and C++ handlers that print a stack dump.
    Only handlers written in Python are put back (not the defaults), so a
    caller who set none keeps the library's."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    own = {s: h for s in (signal.SIGINT, *_HANDLED) if callable(h := signal.getsignal(s))}
    try:
        yield
    finally:
        for s, handler in own.items():
            signal.signal(s, handler)


def pause_point(name: str) -> None:
    """Test hook: when ``$LITEASR_PAUSE_AT`` names this point, say so on stderr
    and wait (forever) for a signal."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    print(f"liteasr: paused at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)
