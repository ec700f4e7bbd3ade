"""bench.mdrp's tables: families read from instance names, merged results files, means."""

from __future__ import annotations

import csv
from pathlib import Path

from bench.mdrp import COLUMNS, families, read_records, render, render_families, write_results


def _row(instance: str, ready: str, c2d: float) -> dict[str, str]:
    cells = {name: "0" for name, _, _ in COLUMNS}
    cells["c2d mean"] = f"{c2d:.2f}"
    return {"instance": instance, "ready": ready, "orders": "10", "feasible": "True", **cells}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_families_come_from_the_instance_name() -> None:
    assert families("3o50t75s2p125") == [
        "seeds 0-4",
        "size o50",
        "travel t75",
        "schedule s2",
        "prep p125",
    ]
    assert families("7r50t100s1p100")[0] == "seeds 5-9"
    assert families("not-an-instance") == []


def test_a_later_file_replaces_an_earlier_row(tmp_path: Path) -> None:
    old = _write(
        tmp_path / "old.csv",
        [_row("0o50t75s1p100", "known", 30.0), _row("0o50t75s1p100", "revealed", 36.0)],
    )
    new = _write(tmp_path / "new.csv", [_row("0o50t75s1p100", "revealed", 34.0)])
    records = read_records([old, new])
    c2d = {r["ready"]: r["c2d mean"] for r in records}
    assert c2d == {"known": "30.00", "revealed": "34.00"}


def test_tables_give_the_means_of_each_mode_and_family(tmp_path: Path) -> None:
    records = [
        _row("0o50t75s1p100", "revealed", 30.0),
        _row("5o50t100s1p100", "revealed", 40.0),
    ]
    table = render(records)
    assert "| ours, ready revealed | 2 | 2 | 0.00 | 35.00 |" in table
    assert "ours, ready known" not in table
    by_family = render_families(records)
    assert "| seeds 0-4 | 1 | 0.00 | 30.00 |" in by_family
    assert "| seeds 5-9 | 1 | 0.00 | 40.00 |" in by_family
    assert "| size o50 | 2 | 0.00 | 35.00 |" in by_family
    text = write_results(records, str(tmp_path / "merged"))
    assert (tmp_path / "merged.md").read_text(encoding="utf-8") == text + "\n"
    assert len(read_records([tmp_path / "merged.csv"])) == 2
