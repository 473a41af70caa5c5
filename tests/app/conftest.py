"""Fixtures of the application tests: a local Ray instance for one test
module (2 CPUs, no dashboard, no usage reports, shut down, Serve first, when
the module ends) and free TCP ports."""

from __future__ import annotations

import ast
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


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a parsed module (module, class and
    function docstrings), which the scans of messages skip."""
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


@pytest.fixture
def docstring_nodes():
    """The function that finds a parsed module's docstrings (for the tests that
    scan the packages' string literals)."""
    return _docstring_nodes
