"""Key performance indicators of a simulated day, exactly as DESIGN.md defines them."""

from __future__ import annotations

from typing import Any

import numpy as np


def merged_shift_hours(shifts: tuple[tuple[int, int], ...], horizon_s: int) -> float:
    """On-shift hours of one rider: shifts merged and clipped to ``[0, horizon_s]``."""
    total_s = 0
    current_start, current_end = -1, -1
    for start_s, end_s in sorted(shifts):
        start_s, end_s = max(0, start_s), min(horizon_s, end_s)
        if end_s <= start_s:
            continue
        if start_s > current_end:
            total_s += max(0, current_end - current_start)
            current_start, current_end = start_s, end_s
        else:
            current_end = max(current_end, end_s)
    total_s += max(0, current_end - current_start)
    return total_s / 3600.0


def _summary(values: np.ndarray, keys: tuple[str, ...]) -> dict[str, float]:
    if values.size == 0:
        return dict.fromkeys(keys, 0.0)
    out: dict[str, float] = {}
    for key in keys:
        if key == "mean":
            out[key] = float(values.mean())
        elif key == "max":
            out[key] = float(values.max())
        else:
            out[key] = float(np.percentile(values, float(key[1:])))
    return out


def compute_kpis(
    *,
    statuses: list[str],
    placed_s: np.ndarray,
    promised_s: np.ndarray,
    delivered_s: np.ndarray,
    lower_bound_s: np.ndarray,
    orders_in_trips: int,
    n_trips: int,
    rider_hours: float,
    rider_distance_m: float,
    tick_ms: list[float],
    policy: str,
    scenario: str,
) -> dict[str, Any]:
    """KPIs of one day; arrays are per order, ``delivered_s`` and ``lower_bound_s`` absolute."""
    status = np.asarray(statuses)
    delivered = status == "delivered"
    n_rejected = int((status == "rejected").sum())
    n_cancelled = int((status == "cancelled").sum())
    served_base = len(statuses) - n_rejected - n_cancelled
    on_time = int((delivered & (delivered_s <= promised_s)).sum())
    click_to_door_s = (delivered_s - placed_s)[delivered].astype(np.float64)
    lateness_s = np.maximum(0, delivered_s - promised_s)[delivered].astype(np.float64)
    bound_s = (lower_bound_s - placed_s)[delivered].astype(np.float64)
    ticks = np.asarray(tick_ms, dtype=np.float64)
    return {
        "orders": len(statuses),
        "delivered": int(delivered.sum()),
        "rejected": n_rejected,
        "undelivered": int((status == "undelivered").sum()),
        "cancelled": n_cancelled,
        "on_time_rate": on_time / served_base if served_base else 0.0,
        "click_to_door_s": _summary(click_to_door_s, ("mean", "p50", "p90", "p99", "max")),
        "lateness_s": _summary(lateness_s, ("mean", "p90", "max")),
        "lower_bound_ratio": (
            float(click_to_door_s.mean() / bound_s.mean()) if bound_s.size else 0.0
        ),
        "orders_per_trip": orders_in_trips / n_trips if n_trips else 0.0,
        "orders_per_rider_hour": int(delivered.sum()) / rider_hours if rider_hours else 0.0,
        "rider_distance_m": rider_distance_m,
        "tick_ms": _summary(ticks, ("p50", "p99", "max")),
        "ticks": int(ticks.size),
        "policy": policy,
        "scenario": scenario,
    }
