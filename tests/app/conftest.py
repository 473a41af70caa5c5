"""Fixtures of the application tests: a local Ray instance for one test
module (2 CPUs, no dashboard, no usage reports, shut down, Serve first, when
the module ends) and free TCP ports."""

from __future__ import annotations

import os
import socket

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for the module's tests (skipped where Ray is not installed)."""
    pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """Factory: ``free_port()``, a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port
