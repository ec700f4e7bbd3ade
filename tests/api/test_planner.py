"""Tests of api/planner.py: the worker process decides as the service's process would, and a
worker that dies is replaced without losing a plan."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from api.planner import Planner, decide_in_process
from router.snapshot import Decision
from tests.router.test_baselines import fixture_snapshot

TICK_S = 30


def same(one: Decision, other: Decision) -> bool:
    """Whether two decisions commit and plan the same trips with the same reasons."""
    return repr(one.trips) == repr(other.trips) and one.reasons == other.reasons


@pytest.fixture
def planner() -> Iterator[Planner]:
    started = Planner()
    started.start()
    yield started
    started.stop()


def worker_pids(planner: Planner) -> set[int]:
    pool = planner._pool
    assert pool is not None
    return set(pool._processes or {})


def test_the_worker_decides_as_this_process_does(planner: Planner) -> None:
    snapshot = fixture_snapshot()
    here = decide_in_process(snapshot, TICK_S)
    assert here.trips  # the fixture commits trips: the comparison says something
    assert same(planner.decide(snapshot, TICK_S), here)
    assert worker_pids(planner) and os.getpid() not in worker_pids(planner)


def test_a_killed_worker_is_replaced_and_no_plan_is_lost(planner: Planner) -> None:
    snapshot = fixture_snapshot()
    here = decide_in_process(snapshot, TICK_S)
    planner.decide(snapshot, TICK_S)
    (killed,) = worker_pids(planner)
    os.kill(killed, signal.SIGKILL)
    assert same(planner.decide(snapshot, TICK_S), here)  # made here, the worker replaced
    assert same(planner.decide(snapshot, TICK_S), here)  # made by the new worker
    assert killed not in worker_pids(planner)


def test_a_planner_not_started_decides_in_this_process() -> None:
    snapshot = fixture_snapshot()
    assert same(Planner().decide(snapshot, TICK_S), decide_in_process(snapshot, TICK_S))


def test_the_worker_outlives_an_interrupt(
    planner: Planner, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C reaches the worker too (one process group); the service stops it, not the signal."""
    snapshot = fixture_snapshot()
    planner.decide(snapshot, TICK_S)
    (worker,) = worker_pids(planner)
    os.kill(worker, signal.SIGINT)
    assert same(planner.decide(snapshot, TICK_S), decide_in_process(snapshot, TICK_S))
    assert worker_pids(planner) == {worker}
    assert "planner process failed" not in caplog.text
