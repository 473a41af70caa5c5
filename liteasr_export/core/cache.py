"""Where liteasr-export keeps what it can rebuild: decoded speech, calibration
statistics, dense transcripts, verification stamps."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/liteasr-export`` (default ``~/.cache/liteasr-export``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liteasr-export"
