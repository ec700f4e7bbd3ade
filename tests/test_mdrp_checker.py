"""The MDRP checker (tests/mdrp_checker.py) on our solutions of the smallest public instances."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from router.mdrp.run import run_instance
from tests.mdrp_checker import check_mdrp

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT.parent / "shared" / "benchmarks" / "mdrp" / "public_instances"
SMALL = ("0r50t100s1p100", "1o50t75s2p125")  # 242 and 269 orders

needs_data = pytest.mark.skipif(
    not INSTANCES.is_dir(), reason="../shared/benchmarks/mdrp is not on this machine"
)


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Our solutions of the small instances, ready times known and revealed."""
    out: dict[tuple[str, str], Path] = {}
    base = tmp_path_factory.mktemp("mdrp")
    for name in SMALL:
        for ready in ("known", "revealed"):
            run_instance(INSTANCES / name, base / f"{name}-{ready}", ready=ready)
            out[name, ready] = base / f"{name}-{ready}"
    return out


@needs_data
@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("ready", ["known", "revealed"])
def test_solution_is_feasible(solved: dict[tuple[str, str], Path], name: str, ready: str) -> None:
    """Every rule of the evaluator holds on our solution, and almost every order is delivered."""
    check = check_mdrp(INSTANCES / name, solved[name, ready])
    assert check.violations == []
    assert check.metrics["undelivered_pct"] <= 1.0


def _tampered(source: Path, target: Path, file: str, old: str, new: str) -> Path:
    shutil.copytree(source, target)
    text = (target / file).read_text()
    assert old in text
    (target / file).write_text(text.replace(old, new, 1))
    return target


@needs_data
def test_checker_catches_early_pickup(solved: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    """A pickup moved before the ready time is a violation."""
    source = solved[SMALL[0], "known"]
    line = (source / "solution_info_assignments.txt").read_text().splitlines()[1]
    assigned, pickup, rest = line.split(" ", 2)
    bad = _tampered(
        source,
        tmp_path / "bad",
        "solution_info_assignments.txt",
        line,
        f"{assigned} {int(pickup) - 30} {rest}",
    )
    assert any("before" in v for v in check_mdrp(INSTANCES / SMALL[0], bad).violations)


@needs_data
def test_checker_catches_teleport(solved: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    """A move whose origin is not the previous destination is a violation."""
    source = solved[SMALL[0], "known"]
    lines = (source / "solution_info_couriers.txt").read_text().splitlines()
    second = lines[2].split(" ")
    assert second[2] != "0"
    changed = " ".join([*second[:2], "0", second[3]])
    bad = _tampered(source, tmp_path / "bad", "solution_info_couriers.txt", lines[2], changed)
    assert check_mdrp(INSTANCES / SMALL[0], bad).violations


@needs_data
def test_checker_catches_early_dropoff(solved: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    """A drop-off one minute earlier than the courier can be at the diner is a violation."""
    source = solved[SMALL[0], "known"]
    line = (source / "solution_info_orders.txt").read_text().splitlines()[1]
    cells = line.split(" ")
    cells[4] = str(int(cells[4]) - 1)
    bad = _tampered(source, tmp_path / "bad", "solution_info_orders.txt", line, " ".join(cells))
    assert check_mdrp(INSTANCES / SMALL[0], bad).violations
