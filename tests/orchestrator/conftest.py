"""The production stack (PostgreSQL, mlflow server, a three-node Ray cluster) as a fixture."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def devstack(tmp_path_factory):
    """One stack for the session (its start-up costs about a minute on 2 cores).

    A test that stops a service (a Ray node, the mlflow server, PostgreSQL) starts it again
    before it ends, so the next test finds the stack whole. With SURNN_DEVSTACK=DIR the tests
    use the stack that `python -m orchestrator.devstack up --dir DIR` started (its Ray nodes
    need tests/orchestrator on their PYTHONPATH) and leave it running.
    """
    import os

    if os.environ.get("SURNN_DEVSTACK"):
        from orchestrator.devstack import Stack

        stack = Stack.load(os.environ["SURNN_DEVSTACK"])
        yield stack
        stack.save()   # the pids of what the tests restarted
        return
    from orchestrator.devstack import PostgresMissing, Stack, StackError, _pg_bin

    try:
        _pg_bin("initdb")
        _pg_bin("pg_ctl")
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("devstack")
    stack = Stack(str(root), pythonpath=f"{HERE}:{ROOT}")
    try:
        stack.up()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    except StackError as exc:
        pytest.fail(str(exc))
    yield stack
    stack.down()
