"""Simulation benchmark: every policy on every preset and seed, side by side in one run.

    python -m bench.simulation [--seeds 1 2 3] [--presets ...] [--vrp-time-limit-s 1.0]

Prints a policy-by-KPI table per preset (means over seeds) and writes it, with one row per
run, under ``bench/results/``. Runs use both cores. The ``ortools-vrp`` baseline costs up to
its time limit on every tick, so it runs on the seeds listed in ``--vrp-seeds`` per preset and
the table says which.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("corner-store", "dark-store", "circle")
POLICIES = ("quarterhour", "nearest", "ortools-vrp")
COLUMNS = (
    ("on-time %", lambda k: 100 * k["on_time_rate"], "{:.1f}"),
    ("c2d mean min", lambda k: k["click_to_door_s"]["mean"] / 60, "{:.1f}"),
    ("c2d p90 min", lambda k: k["click_to_door_s"]["p90"] / 60, "{:.1f}"),
    ("LB ratio", lambda k: k["lower_bound_ratio"], "{:.2f}"),
    ("orders/trip", lambda k: k["orders_per_trip"], "{:.2f}"),
    ("orders/rider-h", lambda k: k["orders_per_rider_hour"], "{:.2f}"),
    ("undelivered", lambda k: k["undelivered"], "{:.1f}"),
    ("tick p50 ms", lambda k: k["tick_ms"]["p50"], "{:.1f}"),
    ("tick p99 ms", lambda k: k["tick_ms"]["p99"], "{:.1f}"),
)


def run_one(
    preset: str, seed: int, policy_name: str, tick_s: int, vrp_time_limit_s: float
) -> dict[str, Any]:
    """One simulated day; returns its KPIs and wall time."""
    from router.cli import make_policy
    from router.dispatch import warm_up
    from router.generate import generate_scenario
    from router.scenario import parse_scenario
    from router.simulate import simulate, write_outputs

    warm_up()
    scenario = parse_scenario(generate_scenario(preset, seed))
    policy = make_policy(policy_name, tick_s, vrp_time_limit_s)
    started = time.perf_counter()
    result = simulate(scenario, policy, tick_s=tick_s)
    wall_s = time.perf_counter() - started
    write_outputs(result, RESULTS / "runs" / f"{preset}-seed{seed}-{policy_name}")
    return {
        "preset": preset,
        "seed": seed,
        "policy": policy_name,
        "wall_s": wall_s,
        "kpis": result.kpis,
    }


def _mean(rows: list[dict[str, Any]], getter: Any) -> float:
    return sum(getter(row["kpis"]) for row in rows) / len(rows)


def render(rows: list[dict[str, Any]], vrp_time_limit_s: float, tick_s: int) -> str:
    """Markdown tables, one per preset, means over the seeds each policy ran."""
    lines = [
        f"Ticks every {tick_s} s; ortools-vrp per-tick limit {vrp_time_limit_s:g} s. "
        "Means over seeds; 'tick ratio' is our tick p50 over ortools-vrp's on the same "
        "seeds.",
        "",
    ]
    for preset in PRESETS:
        mine = [r for r in rows if r["preset"] == preset]
        if not mine:
            continue
        lines.append(f"**{preset}**")
        lines.append("")
        header = ["policy", "seeds", *(name for name, _, _ in COLUMNS)]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for policy in POLICIES:
            runs = [r for r in mine if r["policy"] == policy]
            if not runs:
                continue
            seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
            cells = [fmt.format(_mean(runs, get)) for _, get, fmt in COLUMNS]
            lines.append(f"| {policy} | {seeds} | " + " | ".join(cells) + " |")
        vrp = {r["seed"]: r for r in mine if r["policy"] == "ortools-vrp"}
        ours = [r for r in mine if r["policy"] == "quarterhour" and r["seed"] in vrp]
        if ours:
            ratio = sum(r["kpis"]["tick_ms"]["p50"] for r in ours) / sum(
                vrp[r["seed"]]["kpis"]["tick_ms"]["p50"] for r in ours
            )
            lines.append("")
            lines.append(f"tick ratio quarterhour / ortools-vrp (p50): {ratio:.3f}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--tick-s", type=int, default=30)
    parser.add_argument("--vrp-time-limit-s", type=float, default=1.0)
    parser.add_argument(
        "--vrp-seeds",
        default="corner-store:1,2,3",
        help="preset:seeds;... on which ortools-vrp runs (it spends its limit on every tick: "
        "about 25 min a dark-store or circle day at 1 s)",
    )
    parser.add_argument("--name", default="simulation", help="results file name stem")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    vrp_seeds = {
        part.split(":")[0]: {int(s) for s in part.split(":")[1].split(",") if s}
        for part in args.vrp_seeds.split(";")
        if part
    }
    jobs = [
        (preset, seed, policy)
        for preset in args.presets
        for seed in args.seeds
        for policy in args.policies
        if policy != "ortools-vrp" or seed in vrp_seeds.get(preset, set())
    ]
    # the slowest runs first, so the two workers finish together
    jobs.sort(key=lambda job: (job[2] != "ortools-vrp", job[0] != "dark-store"))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, *job, args.tick_s, args.vrp_time_limit_s) for job in jobs]
        rows = [future.result() for future in futures]
    table = render(rows, args.vrp_time_limit_s, args.tick_s)
    print(table)
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(table + "\n", encoding="utf-8")
    (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    with (RESULTS / f"{args.name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["preset", "seed", "policy", "wall_s", *(c[0] for c in COLUMNS)])
        for row in rows:
            writer.writerow(
                [
                    row["preset"],
                    row["seed"],
                    row["policy"],
                    f"{row['wall_s']:.1f}",
                    *(fmt.format(get(row["kpis"])) for _, get, fmt in COLUMNS),
                ]
            )


if __name__ == "__main__":
    main()
