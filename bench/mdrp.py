"""MDRP benchmark: the dispatcher on every Grubhub instance present, ready times known and revealed.

    python -m bench.mdrp [--instances 0o50t75s1p100 ...] [--match o50] [--ready known revealed]
                         [--workers 2] [--budget-s 240] [--name mdrp]
    python -m bench.mdrp --render bench/results/mdrp.csv bench/results/other.csv [--name mdrp]

Plays each instance's day (``router.mdrp.run``), checks every solution with the independent
checker (``tests/mdrp_checker.py``), prints the means beside the published ones (Reyes et al.
2018, all 240 upstream instances) and writes one row per instance and ready mode to
``bench/results/mdrp.csv`` (solutions under ``bench/results/runs/mdrp/``), and the tables,
overall and per family of instances, to ``bench/results/mdrp.md``. ``--render`` runs nothing:
it merges earlier results files (a later file's row for an instance and mode wins) into one.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
INSTANCES = ROOT.parent / "shared" / "benchmarks" / "mdrp" / "public_instances"
# Reyes, Erera, Savelsbergh, Sahasrabudhe, O'Neil (2018), means over the 240 instances.
PUBLISHED = {
    "known": {
        "undelivered %": 0.25,
        "c2d mean": 32.74,
        "c2d p90": 49.3,
        "ready-to-pickup": 1.93,
        "overage": 2.77,
        "orders/bundle": 1.09,
        "utilisation": 0.63,
        "$/order": 11.42,
    },
    "revealed": {"undelivered %": 0.62, "c2d mean": 34.03},
}
COLUMNS = (
    ("undelivered %", lambda k: k["undelivered_pct"], "{:.2f}"),
    ("c2d mean", lambda k: k["click_to_door_min"]["mean"], "{:.2f}"),
    ("c2d p90", lambda k: k["click_to_door_min"]["p90"], "{:.1f}"),
    ("ready-to-pickup", lambda k: k["ready_to_pickup_min"]["mean"], "{:.2f}"),
    ("overage", lambda k: k["overage_min"]["mean"], "{:.2f}"),
    ("orders/bundle", lambda k: k["orders_per_bundle"], "{:.2f}"),
    ("utilisation", lambda k: k["courier_utilisation"], "{:.2f}"),
    ("$/order", lambda k: k["cost_per_order"], "{:.2f}"),
    ("tick p99 ms", lambda k: k["tick_ms"]["p99"], "{:.0f}"),
    ("wall s", lambda k: k["wall_s"], "{:.1f}"),
)
COLUMN_FORMATS = {name: fmt for name, _, fmt in COLUMNS}


def run_one(name: str, ready: str, budget_s: float) -> dict[str, Any]:
    """One instance in one ready mode: simulate, write, check."""
    from router.dispatch import warm_up
    from router.mdrp.run import run_instance
    from tests.mdrp_checker import check_mdrp

    warm_up()
    out = RESULTS / "runs" / "mdrp" / f"{name}-{ready}"
    kpis = run_instance(INSTANCES / name, out, ready=ready, budget_s=budget_s)
    check = check_mdrp(INSTANCES / name, out)
    return {"kpis": kpis, "violations": check.violations[:3], "feasible": check.feasible}


Record = dict[str, str]  # one row of the csv: instance, ready, orders, feasible, the columns


def record(row: dict[str, Any]) -> Record:
    """A run's csv row: the kpis formatted as the table shows them."""
    k = row["kpis"]
    cells = {name: fmt.format(get(k)) for name, get, fmt in COLUMNS}
    return {
        "instance": k["instance"],
        "ready": k["ready"],
        "orders": str(k["orders"]),
        "feasible": str(row["feasible"]),
        **cells,
    }


def _means(records: list[Record], names: list[str]) -> list[str]:
    return [
        COLUMN_FORMATS[n].format(sum(float(r[n]) for r in records) / len(records)) for n in names
    ]


def render(records: list[Record]) -> str:
    """Markdown: our means per ready mode beside the published means."""
    names = [c[0] for c in COLUMNS]
    lines = ["| " + " | ".join(["", "instances", "feasible", *names]) + " |"]
    lines.append("|" + "---|" * (len(names) + 3))
    for ready in ("known", "revealed"):
        mine = [r for r in records if r["ready"] == ready]
        if not mine:
            continue
        feasible = sum(r["feasible"] == "True" for r in mine)
        means = _means(mine, names)
        lines.append(
            f"| ours, ready {ready} | {len(mine)} | {feasible} | " + " | ".join(means) + " |"
        )
        published = PUBLISHED[ready]
        cells = [COLUMN_FORMATS[n].format(published[n]) if n in published else "" for n in names]
        lines.append(f"| published, ready {ready} | 240 | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# instance name = <seed><size>t<travel>s<schedule>p<prep>, e.g. 3o50t75s2p125
FAMILY_PATTERN = re.compile(r"^(\d)(o100|o50|r50)(t\d+)(s\d)(p\d+)$")
FAMILY_COLUMNS = ["undelivered %", "c2d mean", "$/order", "ready-to-pickup"]


def families(instance: str) -> list[str]:
    """The families an instance belongs to: its seed group, size, travel, schedule, prep."""
    match = FAMILY_PATTERN.match(instance)
    if match is None:
        return []
    seed, size, travel, schedule, prep = match.groups()
    seeds = "seeds 0-4" if int(seed) <= 4 else "seeds 5-9"
    return [seeds, f"size {size}", f"travel {travel}", f"schedule {schedule}", f"prep {prep}"]


def render_families(records: list[Record]) -> str:
    """Markdown: per ready mode, the means of each family of instances."""
    blocks = []
    for ready in ("known", "revealed"):
        mine = [r for r in records if r["ready"] == ready]
        if not mine:
            continue
        groups: dict[str, list[Record]] = {"all": mine}
        for r in sorted(mine, key=lambda r: r["instance"]):
            for family in families(r["instance"]):
                groups.setdefault(family, []).append(r)
        lines = [f"ready {ready}", "| family | instances | " + " | ".join(FAMILY_COLUMNS) + " |"]
        lines.append("|" + "---|" * (len(FAMILY_COLUMNS) + 2))
        for family in ["all", *sorted(g for g in groups if g != "all")]:
            members = groups[family]
            means = _means(members, FAMILY_COLUMNS)
            lines.append(f"| {family} | {len(members)} | " + " | ".join(means) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def write_results(records: list[Record], name: str) -> str:
    """Write ``<name>.csv`` (one row per instance and mode) and ``<name>.md``; return the md."""
    records = sorted(records, key=lambda r: (r["instance"], r["ready"]))
    text = render(records) + "\n\nPer family (means over its instances):\n\n"
    text += render_families(records)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    fields = ["instance", "ready", "orders", "feasible", *(c[0] for c in COLUMNS)]
    with (RESULTS / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    return text


def read_records(paths: list[Path]) -> list[Record]:
    """The rows of earlier runs' csv files; a later file's row replaces an earlier one's."""
    merged: dict[tuple[str, str], Record] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                merged[(row["instance"], row["ready"])] = row
    return list(merged.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", nargs="*", help="instance names (default: all present)")
    parser.add_argument("--match", default="", help="only instance names containing this")
    parser.add_argument("--ready", nargs="+", default=["known", "revealed"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=240.0, help="wall time per instance")
    parser.add_argument("--name", default="mdrp", help="results file name stem")
    parser.add_argument(
        "--render",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="run nothing: merge these results files (later rows win) into <name>.{csv,md}",
    )
    args = parser.parse_args()
    if args.render:
        missing = [str(p) for p in args.render if not p.is_file()]
        if missing:
            raise SystemExit(f"bench.mdrp: --render: not found: {', '.join(missing)}")
        print(write_results(read_records(args.render), args.name))
        return
    if not INSTANCES.is_dir():
        raise SystemExit(f"bench.mdrp: {INSTANCES}: not found")
    names = args.instances or sorted(p.name for p in INSTANCES.iterdir() if p.is_dir())
    names = [n for n in names if args.match in n]
    sizes = {n: (INSTANCES / n / "orders.txt").stat().st_size for n in names}
    # the largest instances first, so the workers finish together
    jobs = sorted(((n, r) for n in names for r in args.ready), key=lambda j: -sizes[j[0]])
    started = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, name, ready, args.budget_s) for name, ready in jobs]
        for future in as_completed(futures):
            rows.append(future.result())
            k = rows[-1]["kpis"]
            print(
                f"[{len(rows)}/{len(jobs)} {time.perf_counter() - started:.0f} s] "
                f"{k['instance']} {k['ready']}: c2d {k['click_to_door_min']['mean']:.2f}, "
                f"undelivered {k['undelivered_pct']:.2f} %, {k['wall_s']:.1f} s, "
                f"{k.get('abandoned_trips', 0)} trips given up, "
                f"{k.get('rebound_trips', 0)} rebound at the restaurant",
                flush=True,
            )
    wall_s = time.perf_counter() - started
    print(write_results([record(row) for row in rows], args.name))
    for row in rows:
        if not row["feasible"]:
            print(
                f"INFEASIBLE {row['kpis']['instance']} {row['kpis']['ready']}: {row['violations']}"
            )
    print(f"total wall time {wall_s:.0f} s, {len(rows)} runs")


if __name__ == "__main__":
    main()
