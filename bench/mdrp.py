"""MDRP benchmark: the dispatcher on every Grubhub instance present, ready times known and revealed.

    python -m bench.mdrp [--instances 0o50t75s1p100 ...] [--match o50] [--ready known revealed]
                         [--workers 2] [--budget-s 240]

Plays each instance's day (``router.mdrp.run``), checks every solution with the independent
checker (``tests/mdrp_checker.py``), prints the means beside the published ones (Reyes et al.
2018, all 240 upstream instances) and writes one row per instance and ready mode to
``bench/results/mdrp.csv`` (solutions under ``bench/results/runs/mdrp/``).
"""

from __future__ import annotations

import argparse
import csv
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


def render(rows: list[dict[str, Any]]) -> str:
    """Markdown: our means per ready mode beside the published means."""
    lines = []
    header = ["", "instances", "feasible", *(c[0] for c in COLUMNS)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for ready in ("known", "revealed"):
        mine = [r for r in rows if r["kpis"]["ready"] == ready]
        if not mine:
            continue
        means = [
            fmt.format(sum(get(r["kpis"]) for r in mine) / len(mine)) for _, get, fmt in COLUMNS
        ]
        feasible = sum(r["feasible"] for r in mine)
        lines.append(
            f"| ours, ready {ready} | {len(mine)} | {feasible} | " + " | ".join(means) + " |"
        )
        published = PUBLISHED[ready]
        cells = [
            fmt.format(published[name]) if name in published else "" for name, _, fmt in COLUMNS
        ]
        lines.append(f"| published, ready {ready} | 240 | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", nargs="*", help="instance names (default: all present)")
    parser.add_argument("--match", default="", help="only instance names containing this")
    parser.add_argument("--ready", nargs="+", default=["known", "revealed"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=240.0, help="wall time per instance")
    parser.add_argument("--name", default="mdrp", help="results file name stem")
    args = parser.parse_args()
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
                f"{k.get('abandoned_trips', 0)} trips given up",
                flush=True,
            )
    wall_s = time.perf_counter() - started
    table = render(rows)
    print(table)
    for row in rows:
        if not row["feasible"]:
            print(
                f"INFEASIBLE {row['kpis']['instance']} {row['kpis']['ready']}: {row['violations']}"
            )
    print(f"total wall time {wall_s:.0f} s, {len(rows)} runs")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(table + "\n", encoding="utf-8")
    with (RESULTS / f"{args.name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instance", "ready", "orders", "feasible", *(c[0] for c in COLUMNS)])
        for row in sorted(rows, key=lambda r: (r["kpis"]["instance"], r["kpis"]["ready"])):
            k = row["kpis"]
            writer.writerow(
                [
                    k["instance"],
                    k["ready"],
                    k["orders"],
                    row["feasible"],
                    *(fmt.format(get(k)) for _, get, fmt in COLUMNS),
                ]
            )


if __name__ == "__main__":
    main()
