"""A local Ray instance for one test module: 2 CPUs, no dashboard, no usage
reports, shut down (Serve first) when the module ends."""

from __future__ import annotations

import os
import socket

import pytest


def start_local_ray(request: pytest.FixtureRequest):
    pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)

    def stop() -> None:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()

    request.addfinalizer(stop)
    return ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
