"""The ``quarterhour`` command: generate scenarios, simulate days, serve the HTTP API.

Bad input exits with status 2 and one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import NoReturn

from router.scenario import ScenarioError, read_scenario
from router.snapshot import Policy

POLICIES = ("quarterhour", "nearest", "ortools-vrp")
MAX_PORT = 65_535


def make_policy(name: str, tick_s: int, vrp_time_limit_s: float = 1.0) -> Policy:
    """A fresh policy by its command-line name."""
    if name == "quarterhour":
        from router.dispatch import QuarterhourPolicy

        return QuarterhourPolicy(tick_s=tick_s)
    if name == "nearest":
        from router.policies.nearest import NearestPolicy

        return NearestPolicy(tick_s=tick_s)
    if name == "ortools-vrp":
        from router.policies.ortools_vrp import OrToolsVrpPolicy

        return OrToolsVrpPolicy(tick_s=tick_s, time_limit_s=vrp_time_limit_s)
    raise ValueError(f"--policy: expected one of {', '.join(POLICIES)}, got {name!r}")


def _simulate(args: argparse.Namespace) -> int:
    from router.dispatch import warm_up
    from router.simulate import simulate, write_outputs

    scenario = read_scenario(args.scenario)
    policy = make_policy(args.policy, args.tick_s, args.vrp_time_limit_s)
    warm_up()
    result = simulate(scenario, policy, tick_s=args.tick_s)
    write_outputs(result, args.out)
    kpis = result.kpis
    print(
        f"{scenario.name} {policy.name}: {kpis['delivered']}/{kpis['orders']} delivered, "
        f"on time {kpis['on_time_rate']:.1%}, click-to-door mean "
        f"{kpis['click_to_door_s']['mean'] / 60:.1f} min, "
        f"lower bound ratio {kpis['lower_bound_ratio']:.2f}, "
        f"{kpis['orders_per_trip']:.2f} orders/trip, tick p99 {kpis['tick_ms']['p99']:.1f} ms "
        f"-> {args.out}"
    )
    return 0


def _mdrp(args: argparse.Namespace) -> int:
    """Play a Grubhub MDRP instance's day; write the evaluator's files and kpis.json."""
    from router.dispatch import warm_up
    from router.mdrp.instance import MdrpError
    from router.mdrp.run import run_instance

    warm_up()
    try:
        kpis = run_instance(args.instance, args.out, policy_name=args.policy, ready=args.ready)
    except MdrpError as error:
        print(f"quarterhour: mdrp: {error}", file=sys.stderr)
        return 2
    click_to_door = kpis["click_to_door_min"]
    print(
        f"{kpis['instance']} {kpis['policy']} ready {kpis['ready']}: "
        f"{kpis['delivered']}/{kpis['orders']} delivered, click-to-door mean "
        f"{click_to_door['mean']:.2f} min (p90 {click_to_door['p90']:.1f}), "
        f"ready-to-pickup {kpis['ready_to_pickup_min']['mean']:.2f} min, "
        f"${kpis['cost_per_order']:.2f}/order, {kpis['orders_per_bundle']:.2f} orders/bundle, "
        f"tick p99 {kpis['tick_ms']['p99']:.0f} ms -> {args.out}"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from router.generate import generate_scenario

    document = generate_scenario(args.preset, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(
        f"{args.preset} seed {args.seed}: {len(document['orders'])} orders, "
        f"{len(document['riders'])} riders, {len(document['shops'])} shops -> {out}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Run the service (``api.main:create_app``, settings from ``QUARTERHOUR_*``) under uvicorn."""
    try:
        port = int(args.port)
    except ValueError:
        port = 0
    if not 1 <= port <= MAX_PORT:
        print(
            f"quarterhour: serve: --port: expected an integer from 1 to {MAX_PORT}, "
            f"got {args.port!r}",
            file=sys.stderr,
        )
        return 2
    # Imported here: ``import router`` must never import the service's dependencies.
    if args.demo:
        from api.demo import run_demo

        return run_demo(args.host, port, speed=args.demo_speed)
    import uvicorn

    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=port)
    return 0


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line naming the problem (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="quarterhour", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)
    sim = commands.add_parser("simulate", help="play a scenario's day with one policy")
    sim.add_argument("scenario", help="scenario file (quarterhour.scenario/1)")
    sim.add_argument("--policy", choices=POLICIES, default="quarterhour")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--tick-s", type=_positive_int, default=30, help="seconds between ticks")
    sim.add_argument(
        "--vrp-time-limit-s",
        type=_positive_seconds,
        default=1.0,
        help="per-tick limit of the ortools-vrp baseline",
    )
    sim.set_defaults(handler=_simulate)
    mdrp = commands.add_parser("mdrp", help="play a Grubhub MDRP instance (meal delivery)")
    mdrp.add_argument("instance", help="instance folder (orders.txt, couriers.txt, ...)")
    mdrp.add_argument("--out", required=True, help="output folder")
    mdrp.add_argument("--policy", choices=("quarterhour",), default="quarterhour")
    mdrp.add_argument(
        "--ready",
        choices=("known", "revealed"),
        default="known",
        help="ready times known at placement, or revealed only once reached",
    )
    mdrp.set_defaults(handler=_mdrp)
    gen = commands.add_parser("gen", help="generate a scenario from a preset")
    gen.add_argument("--preset", choices=("corner-store", "dark-store", "circle"), required=True)
    gen.add_argument("--seed", type=_non_negative_int, required=True)
    gen.add_argument("--out", required=True, help="scenario file to write")
    gen.set_defaults(handler=_generate)
    serve = commands.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", default="8000", help=f"TCP port, 1 to {MAX_PORT}")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create a demo shop with riders on first start, print its credentials and play "
        "orders and riders over HTTP (QUARTERHOUR_DEMO_FEED=0: no feed); what make run does",
    )
    serve.add_argument(
        "--demo-speed",
        type=_positive_int,
        default=20,
        help="with --demo: demo seconds per real second while the feed runs",
    )
    serve.set_defaults(handler=_serve)
    return parser


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "a non-negative integer")


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ScenarioError as error:
        print(f"quarterhour: {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"quarterhour: {args.command}: {error.filename or ''}: {error.strerror}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
