"""Tests of api/demo.py (``quarterhour serve --demo``, what ``make run`` runs)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.demo import DemoClock, RiderAgent
from tests.api.factories import INSIDE_LAT, INSIDE_LON, SHOP_LAT, SHOP_LON

RUN_TIMEOUT_S = 90.0
SPEED = ("--demo-speed", "60")


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def test_demo_clock_runs_faster_than_real_time() -> None:
    """The demo clock starts where it is told and moves ``speed`` times faster than real time."""
    start = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    clock = DemoClock(start, speed=20)
    first = clock()
    time.sleep(0.05)
    assert start <= first < clock()
    assert clock() - start >= timedelta(seconds=1)


def test_rider_agent_follows_its_trip_in_order() -> None:
    """A simulated rider plans the pickup at the shop, then each stop after its travel and
    handoff, and is at the last drop-off when it is done."""
    agent = RiderAgent(id="r", name="Li Wei", mode="ebike", lat=SHOP_LAT, lon=SHOP_LON)
    now = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    stop = {
        "order_id": "o",
        "external_id": "A-0001",
        "status": "assigned",
        "dropoff_lat": INSIDE_LAT,
        "dropoff_lon": INSIDE_LON,
    }
    trip = {
        "id": "t",
        "status": "committed",
        "shop": {"lat": SHOP_LAT, "lon": SHOP_LON},
        "depart_at": (now + timedelta(seconds=60)).isoformat(),
        "stops": [stop],
    }
    agent.follow(trip, now)
    assert [step.kind for step in agent.steps] == ["pickup", "deliver"]
    pickup, deliver = agent.steps
    assert pickup.at == now + timedelta(seconds=60)
    assert deliver.at > pickup.at + timedelta(seconds=90)
    assert agent.position(deliver.at) == (INSIDE_LAT, INSIDE_LON)


def run_demo_until(
    directory: Path, port: int, wanted: str, extra_env: dict[str, str]
) -> tuple[int, str]:
    """Run the demo in ``directory`` until ``wanted`` is printed, then Ctrl-C it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("QUARTERHOUR_")  # the demo's own defaults
    }
    env.update(extra_env)
    log_path = directory / f"demo-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--demo", "--port", str(port), *SPEED],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while wanted not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, log_path.read_text(errors="replace")


def test_demo_seeds_plays_and_restarts(tmp_path: Path) -> None:
    """The demo creates its shop, prints its credentials, shows orders committed and delivered,
    stops cleanly on Ctrl-C, and a second start reuses the shop and its credentials."""
    returncode, output = run_demo_until(tmp_path, free_port(), "] delivered ", {})
    assert returncode == 0, output
    for line in ("admin token", "shop API key", "/docs", "(new shop)", "60x real time"):
        assert line in output, output
    for event in ("] order     ", "] trip      ", "] pickup    ", "] delivered "):
        assert event in output, output
    assert "Application shutdown complete" in output and "quarterhour demo stopped" in output
    credentials = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
    assert credentials["shop_key"] in output and credentials["admin_token"] in output
    assert (tmp_path / "var" / "quarterhour.db").exists()

    returncode, output = run_demo_until(
        tmp_path, free_port(), "stop ", {"QUARTERHOUR_DEMO_FEED": "0"}
    )
    assert returncode == 0, output
    assert "the demo shop of an earlier run" in output, output
    assert credentials["shop_key"] in output and credentials["admin_token"] in output
    assert "] order " not in output


@pytest.mark.parametrize("value", ["0", "false"])
def test_demo_feed_setting(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """QUARTERHOUR_DEMO_FEED=0 (or false) switches the demo feed off; it is on by default."""
    from api.config import Settings

    monkeypatch.delenv("QUARTERHOUR_DEMO_FEED", raising=False)
    assert Settings().demo_feed is True
    monkeypatch.setenv("QUARTERHOUR_DEMO_FEED", value)
    assert Settings().demo_feed is False
