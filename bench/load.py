"""``make load``: the service under locust on loopback, then its intake against bare FastAPI.

1. Starts the service (``uvicorn --factory api.main:create_app``, one process, SQLite in a fresh
   temporary folder, the dispatch loop ticking every ``--tick-s``) and creates over HTTP, with
   the admin token, ``--shops`` shops spread over a grid, each with its API key and
   ``--riders-per-shop`` e-bike riders on duty at the shop.
2. Mixed run (``--duration`` s): POS users paced to ``--orders-per-s`` new orders a second in
   all (plus idempotent replays and status polls), one rider user per rider following its trips,
   and the platform users when ``--platform`` is on. Locust's CSV: ``<out>/load_*.csv``.
3. Intake ratio: closed-loop POS users that only place orders (no wait) against the service and
   against ``bench/bare_app.py`` under the same uvicorn command line, at each number of users
   of ``--ratio-users``, alternating in ``--ratio-rounds`` rounds of ``--ratio-round-s`` seconds
   each, so that both see the same machine load on average. Each server's throughput is its
   best rate over those numbers of users (its peak: a closed loop with too few users measures
   how long each user waits, not what the server can take), and the ratio is of the two peaks;
   the rates at each number of users are reported too.
   ``<out>/load-ratio-{service,bare}-<users>u-<round>_*.csv``.
4. Kills the service with SIGKILL (nothing can be flushed on the way out) and looks up, in its
   SQLite file, every order the service acknowledged during 2 and 3 (each 201 and each replay).

Writes ``<out>/load.md`` and ``<out>/load.json`` and exits 1, naming each failed criterion, on any
failed request, a p99 over ``--p99-ms`` in the mixed run, fewer than ``--min-orders-per-s`` new
orders a second in it, any acknowledged order missing from the database, or an intake ratio
below ``--min-ratio``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "bench" / "locustfile.py"
HOST = "127.0.0.1"
# The same uvicorn command line for the service and the bare app: one process, uvloop and the
# httptools parser (``uvicorn[standard]``, what production runs), no access log (a line per
# request would cost both the same CPU and tell nothing here).
UVICORN_FLAGS = [
    "--host",
    HOST,
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 10.0
# The shops sit on a grid this many degrees apart (about 3.3 km north-south, 2.7 km east-west).
GRID_DEG = 0.03
GRID_COLUMNS = 10
ORIGIN_LAT, ORIGIN_LON = 34.5965, 119.2215  # Wanrun 24h, Lianyungang
# Tasks of a POS user in the mixed run: place an order, replay one, poll one's status.
POS_WEIGHTS = {"place": 8, "replay": 1, "poll": 3}
# New orders a second that one paced POS user places at most.
ORDERS_PER_POS_USER_S = 5.0


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        port: int = listener.getsockname()[1]
        return port


def call(
    base_url: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """``(status, parsed JSON)`` of one request; an HTTP error is a status, not an exception."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def must(answer: tuple[int, Any], status: int, what: str) -> Any:
    if answer[0] != status:
        raise SystemExit(f"load: setup: {what}: HTTP {answer[0]} {answer[1]}")
    return answer[1]


@dataclass
class Server:
    """A uvicorn process of its own on a free loopback port, its output in ``log``."""

    name: str
    app: list[str]
    env: dict[str, str]
    log: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    *self.app,
                    *UVICORN_FLAGS,
                    "--workers",
                    str(self.workers),
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a SIGKILL reaches every worker
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"load: the {self.name} server exited:\n{self.output()}")
            try:
                if call(self.url, "GET", "/healthz")[0] == 200:
                    return
            except OSError:  # refused while it starts
                pass
            time.sleep(0.2)
        raise SystemExit(f"load: the {self.name} server did not answer in {START_TIMEOUT_S} s")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:  # uvicorn's supervisor and its workers at once, none can flush
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None


def provision(url: str, admin_token: str, n_shops: int, riders_per_shop: int) -> list[dict]:
    """Create the shops (each with its key) and their riders, on duty at the shop."""
    shops = []
    for number in range(n_shops):
        lat = round(ORIGIN_LAT + (number // GRID_COLUMNS) * GRID_DEG, 6)
        lon = round(ORIGIN_LON + (number % GRID_COLUMNS) * GRID_DEG, 6)
        body = {"name": f"Load shop {number + 1}", "lat": lat, "lon": lon, "promise_min": 30}
        created = must(call(url, "POST", "/v1/shops", body, admin_token), 201, "create shop")
        key = created["api_key"]["key"]
        riders = []
        for rider_number in range(riders_per_shop):
            rider_in = {"name": f"Rider {number + 1}.{rider_number + 1}", "mode": "ebike"}
            rider = must(call(url, "POST", "/v1/riders", rider_in, key), 201, "create rider")
            path = f"/v1/riders/{rider['id']}"
            must(call(url, "POST", f"{path}/location", {"lat": lat, "lon": lon}, key), 200, "ping")
            must(call(url, "POST", f"{path}/duty", {"on_duty": True}, key), 200, "duty")
            riders.append(rider["id"])
        secret = must(
            call(url, "POST", f"/v1/shops/{created['shop']['id']}/webhook-secrets", None, key),
            201,
            "create webhook secret",
        )
        shops.append(
            {
                "id": created["shop"]["id"],
                "key": key,
                "lat": lat,
                "lon": lon,
                "riders": riders,
                "webhook_secret": secret["secret"],
            }
        )
    return shops


@dataclass
class LocustRun:
    """One headless locust run: its exit code and its ``_stats.csv`` rows by request name."""

    name: str
    run_time_s: float
    exit_code: int
    rows: dict[str, dict[str, str]]
    acked: dict[str, int]

    def count(self, name: str) -> int:
        row = self.rows.get(name)
        return int(row["Request Count"]) if row else 0

    def failures(self) -> int:
        return int(self.rows["Aggregated"]["Failure Count"]) if "Aggregated" in self.rows else -1

    def percentile_ms(self, name: str, column: str) -> float:
        row = self.rows.get(name)
        return float(row[column]) if row and row[column] not in ("N/A", "") else math.nan


def run_locust(
    name: str,
    setup: dict[str, Any],
    user_classes: list[str],
    n_users: int,
    run_time_s: int,
    out: Path,
    work: Path,
) -> LocustRun:
    setup = {**setup, "acked_path": str(work / f"{name}-acked.txt")}
    setup_path = work / f"{name}-setup.json"
    setup_path.write_text(json.dumps(setup))
    prefix = out / name
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        setup["base_url"],
        "--users",
        str(n_users),
        "--spawn-rate",
        str(n_users),
        "--run-time",
        f"{run_time_s}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *user_classes,
    ]
    print(f"load: {name}: {n_users} users ({', '.join(user_classes)}) for {run_time_s} s")
    env = {**os.environ, "QUARTERHOUR_LOAD_SETUP": str(setup_path)}
    with (work / f"{name}-locust.log").open("wb") as log:
        exit_code = subprocess.run(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
    rows: dict[str, dict[str, str]] = {}
    stats_path = Path(f"{prefix}_stats.csv")
    if stats_path.exists():
        with stats_path.open(newline="") as stats:
            rows = {row["Name"]: row for row in csv.DictReader(stats)}
    acked: dict[str, int] = {}
    acked_path = Path(setup["acked_path"])
    if acked_path.exists():
        for line in acked_path.read_text().splitlines():
            order_id, count = line.split()
            acked[order_id] = int(count)
    if exit_code != 0:
        tail = (work / f"{name}-locust.log").read_text(errors="replace")[-3000:]
        print(f"load: {name}: locust exited with {exit_code}:\n{tail}")
    return LocustRun(name, float(run_time_s), exit_code, rows, acked)


def missing_orders(database: Path, acked: set[str]) -> list[str]:
    """The acknowledged order ids that are not in the SQLite file (read-only)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        stored = {uuid.UUID(row[0]).hex for row in connection.execute("SELECT id FROM orders")}
    finally:
        connection.close()
    return sorted(order_id for order_id in acked if uuid.UUID(order_id).hex not in stored)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds of the mixed run")
    parser.add_argument("--orders-per-s", type=float, default=230.0, help="paced new orders/s")
    parser.add_argument("--shops", type=int, default=60)
    parser.add_argument("--riders-per-shop", type=int, default=1)
    parser.add_argument("--rider-poll-s", type=float, default=1.0)
    parser.add_argument("--tick-s", type=int, default=5, help="QUARTERHOUR_TICK_S (its default)")
    parser.add_argument("--platform", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--platform-events-per-s", type=float, default=20.0)
    parser.add_argument(
        "--app", default="api.main:create_app", help="the service's app factory (comparisons)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, of the service and of the bare app alike",
    )
    parser.add_argument(
        "--ratio-users",
        type=int,
        nargs="+",
        default=[16, 64, 128],
        help="closed-loop users of the intake ratio; each server's peak over these counts",
    )
    parser.add_argument("--ratio-rounds", type=int, default=2)
    parser.add_argument("--ratio-round-s", type=int, default=15)
    parser.add_argument("--min-orders-per-s", type=float, default=200.0)
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--min-ratio", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="quarterhour-load-"))
    database = work / "quarterhour.db"
    admin_token = secrets.token_urlsafe(24)
    service = Server(
        "service",
        ["--factory", args.app],
        {
            "QUARTERHOUR_DATABASE_URL": f"sqlite:///{database}",
            "QUARTERHOUR_ADMIN_TOKEN": admin_token,
            "QUARTERHOUR_TICK_S": str(args.tick_s),
            "QUARTERHOUR_DEMO_FEED": "0",
        },
        work / "service.log",
        workers=args.workers,
    )
    bare = Server("bare", ["bench.bare_app:app"], {}, work / "bare.log", workers=args.workers)
    print(f"load: working in {work}")
    try:
        service.start()
        t0 = time.monotonic()
        shops = provision(service.url, admin_token, args.shops, args.riders_per_shop)
        n_riders = sum(len(shop["riders"]) for shop in shops)
        print(
            f"load: {len(shops)} shops and {n_riders} riders on duty at {service.url} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        # The platform users place about one order per event they start with (a create).
        platform_rate = args.platform_events_per_s if args.platform else 0.0
        pos_rate = max(1.0, args.orders_per_s - platform_rate)
        iterations_per_s = pos_rate * sum(POS_WEIGHTS.values()) / POS_WEIGHTS["place"]
        pos_users = max(1, math.ceil(pos_rate / ORDERS_PER_POS_USER_S))
        platform_users = max(1, math.ceil(platform_rate / ORDERS_PER_POS_USER_S))
        base = {"base_url": service.url, "target": "service", "shops": shops}
        mixed_setup = {
            **base,
            "run_tag": "mixed",
            "pos_users": pos_users,
            "pos_iterations_per_s": iterations_per_s / pos_users,
            "pos_weights": POS_WEIGHTS,
            "riders": True,
            "rider_poll_s": args.rider_poll_s,
            "platform": {"source": "meituan"} if args.platform else None,
            "platform_users": platform_users,
            "platform_iterations_per_s": platform_rate / platform_users,
            "p99_budget_ms": args.p99_ms,
        }
        classes = ["PosUser", "RiderUser"] + (["PlatformUser"] if args.platform else [])
        mixed = run_locust(
            "load",
            mixed_setup,
            classes,
            pos_users + n_riders + (platform_users if args.platform else 0),
            args.duration,
            args.out,
            work,
        )

        bare.start()
        ratio_runs: dict[tuple[str, int], list[LocustRun]] = {}
        for round_number in range(1, args.ratio_rounds + 1):
            for users in args.ratio_users:
                for target, server in (("service", service), ("bare", bare)):
                    setup = {
                        **base,
                        "base_url": server.url,
                        "target": target,
                        "run_tag": f"ratio{users}u{round_number}",
                        "pos_users": users,
                        "pos_iterations_per_s": 0.0,
                        "pos_weights": {"place": 1},
                        "riders": False,
                        "platform": None,
                        "p99_budget_ms": 0,
                    }
                    run = run_locust(
                        f"load-ratio-{target}-{users}u-{round_number}",
                        setup,
                        ["PosUser"],
                        users,
                        args.ratio_round_s,
                        args.out,
                        work,
                    )
                    ratio_runs.setdefault((target, users), []).append(run)
    finally:
        service.stop(kill=True)  # SIGKILL: what is in the database now was there before
        bare.stop()
        service_log = service.output() if service.log.exists() else ""

    acked = set(mixed.acked)
    for users in args.ratio_users:
        for run in ratio_runs[("service", users)]:
            acked |= set(run.acked)
    missing = missing_orders(database, acked)

    new_orders = mixed.count("POST /v1/orders") + mixed.count("POST /v1/webhooks/{source}")
    orders_per_s = new_orders / mixed.run_time_s
    p50 = mixed.percentile_ms("Aggregated", "50%")
    p99 = mixed.percentile_ms("Aggregated", "99%")
    orders_p99 = mixed.percentile_ms("POST /v1/orders", "99%")
    ladder = {
        users: {target: intake_rate(ratio_runs[(target, users)]) for target in ("service", "bare")}
        for users in args.ratio_users
    }
    service_users = max(args.ratio_users, key=lambda users: ladder[users]["service"])
    bare_users = max(args.ratio_users, key=lambda users: ladder[users]["bare"])
    service_rate = ladder[service_users]["service"]
    bare_rate = ladder[bare_users]["bare"]
    ratio = service_rate / bare_rate if bare_rate else math.nan
    all_runs = [mixed, *(run for runs in ratio_runs.values() for run in runs)]
    failures = {run.name: run.failures() for run in all_runs}

    problems = []
    for run in all_runs:
        if run.failures() != 0 or not run.rows:
            problems.append(
                f"{run.name}: {run.failures()} failed requests (locust exit {run.exit_code})"
            )
    if not orders_per_s >= args.min_orders_per_s:
        problems.append(f"{orders_per_s:.1f} new orders/s, under {args.min_orders_per_s:.0f}")
    if not p99 <= args.p99_ms:
        problems.append(f"p99 {p99:.0f} ms over the {args.p99_ms:.0f} ms budget")
    if missing:
        problems.append(f"{len(missing)} acknowledged orders missing, e.g. {missing[:3]}")
    if not ratio >= args.min_ratio:
        problems.append(f"intake ratio {ratio:.2f} under {args.min_ratio:.2f}")

    summary: dict[str, Any] = {
        "mixed": {
            "duration_s": mixed.run_time_s,
            "target_orders_per_s": args.orders_per_s,
            "new_orders": new_orders,
            "new_orders_per_s": round(orders_per_s, 1),
            "requests": mixed.count("Aggregated"),
            "requests_per_s": round(mixed.count("Aggregated") / mixed.run_time_s, 1),
            "p50_ms": p50,
            "p99_ms": p99,
            "orders_p99_ms": orders_p99,
            "by_name": {
                name: {
                    "count": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "p50_ms": mixed.percentile_ms(name, "50%"),
                    "p99_ms": mixed.percentile_ms(name, "99%"),
                }
                for name, row in mixed.rows.items()
            },
            "shops": args.shops,
            "riders": n_riders,
            "tick_s": args.tick_s,
            "platform": args.platform,
        },
        "ratio": {
            "users": args.ratio_users,
            "seconds_each": args.ratio_rounds * args.ratio_round_s,
            "service_orders_per_s": round(service_rate, 1),
            "service_users": service_users,
            "bare_orders_per_s": round(bare_rate, 1),
            "bare_users": bare_users,
            "ratio": round(ratio, 3),
            "by_users": [
                {
                    "users": users,
                    "service_orders_per_s": round(ladder[users]["service"], 1),
                    "bare_orders_per_s": round(ladder[users]["bare"], 1),
                    "ratio": round(ladder[users]["service"] / ladder[users]["bare"], 3)
                    if ladder[users]["bare"]
                    else math.nan,
                    "service_p99_ms": [
                        run.percentile_ms("POST /v1/orders", "99%")
                        for run in ratio_runs[("service", users)]
                    ],
                    "bare_p99_ms": [
                        run.percentile_ms("POST /v1/orders", "99%")
                        for run in ratio_runs[("bare", users)]
                    ],
                }
                for users in args.ratio_users
            ],
        },
        "failures": failures,
        "acknowledged_orders": len(acked),
        "missing_orders": len(missing),
        "problems": problems,
    }
    (args.out / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_markdown(args.out / "load.md", summary)
    print(
        f"load: mixed run: {orders_per_s:.1f} new orders/s "
        f"({new_orders} in {mixed.run_time_s:.0f} s), "
        f"{summary['mixed']['requests_per_s']} requests/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"(orders p99 {orders_p99:.0f} ms), {failures['load']} failures"
    )
    print(
        f"load: acknowledged orders {len(acked)}, "
        f"missing from the database after SIGKILL: {len(missing)}"
    )
    for step in summary["ratio"]["by_users"]:
        print(
            f"load: intake, {step['users']} closed-loop POS users: "
            f"service {step['service_orders_per_s']:.1f} orders/s, "
            f"bare FastAPI {step['bare_orders_per_s']:.1f} orders/s, ratio {step['ratio']:.3f}"
        )
    print(
        f"load: intake at each server's peak: service {service_rate:.1f} orders/s "
        f"({service_users} users), bare FastAPI {bare_rate:.1f} orders/s ({bare_users} users), "
        f"ratio {ratio:.3f}"
    )
    if problems:
        for problem in problems:
            print(f"load: FAIL: {problem}")
        print(f"load: server log tail:\n{service_log[-1500:]}")
        print(f"load: files kept in {work}")
        return 1
    print("load: PASS")
    if not args.keep:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    return 0


def intake_rate(runs: list[LocustRun]) -> float:
    """New orders a second over ``runs`` (the rounds of one server at one number of users)."""
    seconds = sum(run.run_time_s for run in runs)
    return sum(run.count("POST /v1/orders") for run in runs) / seconds if seconds else 0.0


def rounds(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


def write_markdown(path: Path, summary: dict[str, Any]) -> None:
    mixed, ratio = summary["mixed"], summary["ratio"]
    lines = [
        "# make load",
        "",
        f"Mixed run: {mixed['duration_s']:.0f} s, {mixed['shops']} shops, "
        f"{mixed['riders']} riders, dispatch tick {mixed['tick_s']} s, "
        f"platform users {'on' if mixed['platform'] else 'off'}; "
        f"POS users paced to {mixed['target_orders_per_s']:.0f} new orders/s.",
        "",
        f"- new orders: {mixed['new_orders']} ({mixed['new_orders_per_s']} /s)",
        f"- requests: {mixed['requests']} ({mixed['requests_per_s']} /s), "
        f"p50 {mixed['p50_ms']:.0f} ms, p99 {mixed['p99_ms']:.0f} ms",
        f"- acknowledged orders: {summary['acknowledged_orders']}, missing after SIGKILL: "
        f"{summary['missing_orders']}",
        "",
        "| request | count | failures | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, row in mixed["by_name"].items():
        cells = [name, row["count"], row["failures"], f"{row['p50_ms']:.0f}"]
        lines.append("| " + " | ".join(map(str, [*cells, f"{row['p99_ms']:.0f}"])) + " |")
    lines += [
        "",
        f"Intake, closed-loop POS users, {ratio['seconds_each']:.0f} s a server at each number "
        "of users, alternating rounds:",
        "",
        "| users | service orders/s | bare FastAPI orders/s | ratio | service p99 ms per round "
        "| bare p99 ms per round |",
        "|---|---|---|---|---|---|",
    ]
    for step in ratio["by_users"]:
        lines.append(
            f"| {step['users']} | {step['service_orders_per_s']} | {step['bare_orders_per_s']} "
            f"| {step['ratio']} | {rounds(step['service_p99_ms'])} "
            f"| {rounds(step['bare_p99_ms'])} |"
        )
    lines += [
        "",
        f"Ratio of the peaks, service ({ratio['service_orders_per_s']} orders/s at "
        f"{ratio['service_users']} users) / bare ({ratio['bare_orders_per_s']} orders/s at "
        f"{ratio['bare_users']} users): {ratio['ratio']}",
        "",
        "Result: "
        + ("PASS" if not summary["problems"] else "FAIL: " + "; ".join(summary["problems"])),
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
