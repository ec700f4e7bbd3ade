"""Tests of the ``quarterhour`` command (router/cli.py), run as ``python -m router.cli``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.scenario import FORMAT, read_scenario
from tests.checker import check_simulation

ROOT = Path(__file__).resolve().parent.parent
SHOP = (34.5965, 119.2215)


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the command line in a fresh interpreter from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _tiny_scenario() -> dict[str, Any]:
    """1 shop, 2 riders (ebike and walk), 6 orders within a few hundred metres over one hour."""
    offsets = [
        (0.002, 0.0),
        (0.0021, 0.0004),
        (-0.0015, 0.001),
        (0.001, -0.002),
        (0.0025, 0.0015),
        (-0.002, -0.001),
    ]
    orders = []
    for i, (dlat, dlon) in enumerate(offsets):
        placed_s = 300 + 420 * i
        orders.append(
            {
                "id": f"o{i + 1}",
                "shop": "s1",
                "lat": SHOP[0] + dlat,
                "lon": SHOP[1] + dlon,
                "size": 1 + i % 2,
                "placed_s": placed_s,
                "ready_s": placed_s + 180 + 60 * (i % 3),
            }
        )
    return {
        "format": FORMAT,
        "name": "cli-tiny",
        "start": "2026-11-29T00:00:00+08:00",
        "horizon_s": 3600,
        "shops": [{"id": "s1", "name": "Corner", "lat": SHOP[0], "lon": SHOP[1]}],
        "riders": [
            {"id": "r1", "mode": "ebike", "capacity": 3, "shifts": [[0, 3600]]},
            {
                "id": "r2",
                "mode": "walk",
                "capacity": 2,
                "shops": ["s1"],
                "lat": SHOP[0] + 0.001,
                "lon": SHOP[1],
                "shifts": [[600, 2400], [2700, 3600]],
            },
        ],
        "orders": orders,
    }


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("quarterhour: simulate: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_simulate_missing_file(tmp_path: Path) -> None:
    """A missing scenario file exits 2 with one stderr line naming the file."""
    done = _run("simulate", tmp_path / "nowhere.json", "--out", tmp_path / "out")
    _assert_one_line_error(done, "nowhere.json", "cannot read file")


def test_simulate_not_json(tmp_path: Path) -> None:
    """A scenario file that is not JSON exits 2 with one stderr line saying so."""
    path = tmp_path / "scenario.json"
    path.write_text("format: quarterhour.scenario/1\n", encoding="utf-8")
    done = _run("simulate", path, "--out", tmp_path / "out")
    _assert_one_line_error(done, "scenario.json", "not JSON")


def test_simulate_bad_field(tmp_path: Path) -> None:
    """A scenario with a bad field exits 2 with one stderr line naming the field."""
    document = _tiny_scenario()
    document["orders"][2]["lat"] = 123.0
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    done = _run("simulate", path, "--out", tmp_path / "out")
    _assert_one_line_error(done, "orders[2].lat")
    assert not (tmp_path / "out").exists()


def test_simulate_non_utf8_file(tmp_path: Path) -> None:
    """A scenario file of non-UTF-8 bytes exits 2 with one stderr line, no traceback."""
    path = tmp_path / "scenario.json"
    path.write_bytes(b"\xff\xfe\x00 not a scenario")
    _assert_one_line_error(_run("simulate", path, "--out", tmp_path / "out"), "scenario.json")


def test_simulate_time_beyond_int64(tmp_path: Path) -> None:
    """A scenario whose times do not fit int64 exits 2 with one stderr line naming the field."""
    document = _tiny_scenario()
    document["orders"][0]["placed_s"] = 2**63
    document["orders"][0]["ready_s"] = 2**63
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    _assert_one_line_error(_run("simulate", path, "--out", tmp_path / "out"), "orders[0]")


def test_simulate_tiny_scenario_passes_checker(tmp_path: Path) -> None:
    """A tiny day simulated with quarterhour writes outputs the independent checker accepts."""
    document = _tiny_scenario()
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    out = tmp_path / "out"
    done = _run("simulate", path, "--policy", "quarterhour", "--out", out)
    assert done.returncode == 0, done.stderr
    for name in ("outcomes.csv", "trips.csv", "kpis.json"):
        assert (out / name).is_file(), name
    assert check_simulation(document, out) == []
    kpis = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["orders"] == 6
    assert kpis["delivered"] == 6  # two riders and an hour are plenty for six nearby orders
    assert kpis["policy"] == "quarterhour"
    assert kpis["scenario"] == "cli-tiny"


def _has_generator() -> bool:
    try:
        from router.generate import generate_scenario  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(
    not _has_generator(), reason="router/generate.py with generate_scenario does not exist yet"
)
def test_gen_writes_a_readable_scenario(tmp_path: Path) -> None:
    """``gen --preset corner-store --seed 1`` writes a scenario that read_scenario accepts."""
    path = tmp_path / "corner-store-seed1.json"
    done = _run("gen", "--preset", "corner-store", "--seed", "1", "--out", path)
    assert done.returncode == 0, done.stderr
    scenario = read_scenario(path)
    assert scenario.orders
    assert scenario.riders
    again = tmp_path / "again.json"
    assert _run("gen", "--preset", "corner-store", "--seed", "1", "--out", again).returncode == 0
    assert again.read_bytes() == path.read_bytes(), "the same seed gives the same file"


def test_usage_errors_are_one_line_naming_the_argument(tmp_path: Path) -> None:
    """A bad or missing argument exits 2 with one stderr line that names it."""
    cases = [
        (("gen", "--preset", "nope", "--seed", "1", "--out", tmp_path / "x.json"), "--preset"),
        (("simulate", tmp_path / "x.json"), "--out"),
        (("simulate", "x.json", "--out", tmp_path, "--tick-s", "-3"), "--tick-s"),
        (("simulate", "x.json", "--out", tmp_path, "--policy", "magic"), "--policy"),
        (("gen", "--preset", "corner-store", "--seed", "-1", "--out", tmp_path / "x"), "--seed"),
        (("gen", "--preset", "corner-store", "--seed", "one", "--out", tmp_path / "x"), "--seed"),
        (("simulate", "x.json", "--out", tmp_path, "--vrp-time-limit-s", "nan"), "--vrp-time"),
        (("simulate", "x.json", "--out", tmp_path, "--vrp-time-limit-s", "0"), "--vrp-time"),
        (("simulate", "x.json", "--out", tmp_path, "--vrp-time-limit-s", "inf"), "--vrp-time"),
    ]
    for args, needle in cases:
        done = _run(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert needle in lines[0], lines[0]
