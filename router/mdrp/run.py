"""Play one MDRP instance's day on the virtual clock and write its solution and kpis.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from router.bundles import BundleLimits
from router.dispatch import QuarterhourPolicy
from router.mdrp.adapter import (
    MDRP_LIMITS,
    TICK_S,
    mdrp_metric,
    mdrp_policy,
    ready_reveal,
    relocate,
    rider_pay,
    to_scenario,
)
from router.mdrp.instance import read_instance
from router.mdrp.solution import solution_kpis, to_solution, write_solution
from router.simulate import simulate
from router.snapshot import Decision, Snapshot

READY_MODES = ("known", "revealed")
POLICIES = ("quarterhour",)  # the baselines compute haversine travel; MDRP needs the metric


def run_instance(
    instance_dir: str | Path,
    out_dir: str | Path,
    *,
    policy_name: str = "quarterhour",
    ready: str = "known",
    limits: BundleLimits = MDRP_LIMITS,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Simulate the instance, write the evaluator's three files and kpis.json; return the kpis."""
    if ready not in READY_MODES:
        raise ValueError(f"ready: expected one of {READY_MODES}, got {ready!r}")
    if policy_name not in POLICIES:
        raise ValueError(f"policy: expected one of {POLICIES}, got {policy_name!r}")
    instance = read_instance(instance_dir)
    scenario = to_scenario(instance)
    policy = mdrp_policy(limits)
    started = time.perf_counter()
    result = simulate(
        scenario,
        _Budgeted(policy, started, budget_s) if budget_s else policy,
        tick_s=TICK_S,
        metric=mdrp_metric(),
        ready_reveal=ready_reveal(instance) if ready == "revealed" else None,
        pay=rider_pay(instance),
        relocate=relocate(),
    )
    wall_s = time.perf_counter() - started
    solution = to_solution(instance, result)
    write_solution(instance, solution, out_dir)
    kpis = solution_kpis(instance, solution)
    kpis.update(
        policy=policy.name,
        ready=ready,
        tick_ms=result.kpis["tick_ms"],
        ticks=result.kpis["ticks"],
        refused_commits=result.refused_commits,
        abandoned_trips=len(result.abandoned_trips) - result.rebound_trips,
        rebound_trips=result.rebound_trips,
        relocations=len(result.relocations),
        wall_s=wall_s,
    )
    (Path(out_dir) / "kpis.json").write_text(json.dumps(kpis, indent=2) + "\n", encoding="utf-8")
    return kpis


FAST_LIMIT = 0.05  # CP-SAT work units and seconds per tick once over budget


class _Budgeted:
    """The policy, with CP-SAT cut to a few milliseconds a tick once the day is over budget."""

    def __init__(self, policy: QuarterhourPolicy, started: float, budget_s: float) -> None:
        self.policy = policy
        self.name = policy.name
        self.deadline = started + budget_s

    def decide(self, snapshot: Snapshot) -> Decision:
        if time.perf_counter() > self.deadline:
            self.policy.deterministic_limit = min(self.policy.deterministic_limit, FAST_LIMIT)
            self.policy.time_limit_s = min(self.policy.time_limit_s, FAST_LIMIT)
        return self.policy.decide(snapshot)
