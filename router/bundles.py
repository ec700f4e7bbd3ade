"""Candidate bundles: per shop, small sets of pending orders worth carrying in one trip.

Each order seeds bundles with its nearest same-shop neighbours (bounded by ``neighbours``,
``radius_m``, ready-time spread and capacity), so the number of bundles grows linearly with the
snapshot. Every bundle gets its best delivery sequence for each rider mode by exact search over
all sequences (at most ``max_stops``! of them), scored by click-to-door and lateness for a
nominal departure time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from router.jit import kernel
from router.snapshot import BoolArray, FloatArray, IntArray

# Lateness, in seconds of click-to-door (``router.assign`` prices pairs with these, scaled): a
# second late costs five, and an order delivered late at all as much as 50 more minutes. When
# riders are short, an order that can still be on time goes before one that is late either way
# (one second late weighs the same for both), so fewer promises break (docs/benchmarks.md,
# session 11: circle on time 30.1 -> 39.6 % on seeds 7-10, corner-store 95.8 -> 96.7 % on 7-26).
LATE_WEIGHT = 5
LATE_ORDER_COST = 3000


@dataclass(frozen=True)
class BundleLimits:
    max_stops: int = 5
    neighbours: int = 6  # nearest same-shop orders a seed may bundle with
    radius_m: float = 900.0  # road distance from the seed's drop-off
    ready_spread_s: int = 600  # latest minus earliest ready time within a bundle


@dataclass(frozen=True)
class Bundles:
    orders: IntArray  # (n_bundles, max_stops) snapshot order indices, padded with -1
    n_stops: IntArray
    shops: IntArray
    sizes: IntArray
    ready_s: IntArray  # latest ready time in the bundle
    sequences: IntArray  # (n_bundles, n_modes, max_stops) delivery order per mode
    offsets_s: IntArray  # (n_bundles, n_modes, max_stops) delivered time minus depart time

    @property
    def n_bundles(self) -> int:
        return int(self.orders.shape[0])


@kernel
def _enumerate_bundles(
    order_shops: IntArray,
    order_sizes: IntArray,
    order_ready_s: IntArray,
    order_distances_m: FloatArray,
    shop_max_capacity: IntArray,
    max_stops: int,
    neighbours: int,
    radius_m: float,
    ready_spread_s: int,
) -> IntArray:
    n_orders = order_shops.shape[0]
    width = max_stops
    capacity_rows = n_orders * (1 << neighbours)
    out = np.full((capacity_rows, width), -1, dtype=np.int64)
    n_out = 0
    near = np.empty(neighbours, dtype=np.int64)
    members = np.empty(width, dtype=np.int64)
    for seed in range(n_orders):
        shop = order_shops[seed]
        if order_sizes[seed] > shop_max_capacity[shop]:
            continue
        # the seed's nearest same-shop neighbours within the radius
        n_near = 0
        order_by_distance = np.argsort(order_distances_m[seed])
        for j in order_by_distance:
            if n_near == neighbours:
                break
            if j == seed or order_shops[j] != shop:
                continue
            if order_distances_m[seed, j] > radius_m:
                break
            if abs(order_ready_s[j] - order_ready_s[seed]) > ready_spread_s:
                continue
            near[n_near] = j
            n_near += 1
        for mask in range(1 << n_near):
            count = 1
            size = order_sizes[seed]
            ready_min = order_ready_s[seed]
            ready_max = order_ready_s[seed]
            members[0] = seed
            ok = True
            for bit in range(n_near):
                if mask & (1 << bit):
                    if count == width:
                        ok = False
                        break
                    j = near[bit]
                    members[count] = j
                    count += 1
                    size += order_sizes[j]
                    ready_min = min(ready_min, order_ready_s[j])
                    ready_max = max(ready_max, order_ready_s[j])
            if not ok or size > shop_max_capacity[shop] or ready_max - ready_min > ready_spread_s:
                continue
            sorted_members = np.sort(members[:count])
            for k in range(count):
                out[n_out, k] = sorted_members[k]
            n_out += 1
    return out[:n_out]


@kernel
def _sequence_bundles(
    bundle_orders: IntArray,
    n_stops: IntArray,
    bundle_ready_s: IntArray,
    shop_order_s: IntArray,
    order_order_s: IntArray,
    bundle_shops: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    permutations: IntArray,
    permutation_starts: IntArray,
    now_s: int,
    pickup_s: int,
    handoff_s: int,
) -> tuple[IntArray, IntArray]:
    n_bundles, width = bundle_orders.shape
    n_modes = shop_order_s.shape[0]
    sequences = np.full((n_bundles, n_modes, width), -1, dtype=np.int64)
    offsets_s = np.zeros((n_bundles, n_modes, width), dtype=np.int64)
    trial = np.zeros(width, dtype=np.int64)
    for b in range(n_bundles):
        k = n_stops[b]
        shop = bundle_shops[b]
        depart_s = max(now_s, bundle_ready_s[b]) + pickup_s
        for m in range(n_modes):
            best_cost = np.inf
            for p in range(permutation_starts[k], permutation_starts[k + 1]):
                cost = 0.0
                clock_s = 0
                previous = -1
                for step in range(k):
                    order = bundle_orders[b, permutations[p, step]]
                    if previous < 0:
                        clock_s += shop_order_s[m, shop, order]
                    else:
                        clock_s += order_order_s[m, previous, order]
                    clock_s += handoff_s
                    trial[step] = clock_s
                    delivered_s = depart_s + clock_s
                    cost += delivered_s - order_placed_s[order]
                    if delivered_s > order_promised_s[order]:
                        cost += LATE_ORDER_COST + LATE_WEIGHT * (
                            delivered_s - order_promised_s[order]
                        )
                    previous = order
                if cost < best_cost:
                    best_cost = cost
                    for step in range(k):
                        sequences[b, m, step] = bundle_orders[b, permutations[p, step]]
                        offsets_s[b, m, step] = trial[step]
    return sequences, offsets_s


def _permutation_table(max_stops: int) -> tuple[IntArray, IntArray]:
    rows: list[tuple[int, ...]] = []
    starts = [0, 0]
    for k in range(1, max_stops + 1):
        rows.extend(p + (0,) * (max_stops - k) for p in itertools.permutations(range(k)))
        starts.append(len(rows))
    return np.array(rows, dtype=np.int64).reshape(-1, max_stops), np.array(starts, np.int64)


_PERMUTATIONS: dict[int, tuple[IntArray, IntArray]] = {}


def unique_rows(rows: IntArray, n_values: int) -> IntArray:
    """``np.unique(rows, axis=0)`` for rows of values in ``[-1, n_values)``: the distinct rows in
    lexicographic order, 10x faster (one int64 key a row when the keys fit, else a lexsort;
    numpy's sorts a structured view)."""
    if rows.shape[0] == 0:
        return rows
    base = n_values + 1
    if base ** rows.shape[1] < 2**62:
        keys = np.zeros(rows.shape[0], dtype=np.int64)
        for column in rows.T:
            keys = keys * base + (column + 1)
        _, first = np.unique(keys, return_index=True)
        return rows[first]
    ranked = rows[np.lexsort(rows.T[::-1])]
    distinct = np.ones(ranked.shape[0], dtype=np.bool_)
    distinct[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
    return ranked[distinct]


def build_bundles(
    *,
    now_s: int,
    order_shops: IntArray,
    order_sizes: IntArray,
    order_ready_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    order_distances_m: FloatArray,
    shop_order_s: IntArray,
    order_order_s: IntArray,
    shop_max_capacity: IntArray,
    modes_used: BoolArray,
    pickup_s: int,
    handoff_s: int,
    limits: BundleLimits,
) -> Bundles:
    """Candidate bundles of the pending orders with their best sequence per mode.

    ``shop_order_s`` is ``(n_modes, n_shops, n_orders)`` and ``order_order_s`` is
    ``(n_modes, n_orders, n_orders)`` travel seconds; modes not in ``modes_used`` are skipped.
    """
    if limits.max_stops not in _PERMUTATIONS:
        _PERMUTATIONS[limits.max_stops] = _permutation_table(limits.max_stops)
    permutations, permutation_starts = _PERMUTATIONS[limits.max_stops]
    raw = _enumerate_bundles(
        # the spread of ready times counts from now: orders ready long ago are ready now
        order_shops,
        order_sizes,
        np.maximum(order_ready_s, now_s),
        order_distances_m,
        shop_max_capacity,
        limits.max_stops,
        limits.neighbours,
        limits.radius_m,
        limits.ready_spread_s,
    )
    orders = unique_rows(raw, order_shops.shape[0])
    n_stops = (orders >= 0).sum(axis=1).astype(np.int64)
    safe = np.where(orders >= 0, orders, 0)
    present = orders >= 0
    shops = order_shops[safe[:, 0]] if orders.shape[0] else np.zeros(0, np.int64)
    sizes = np.where(present, order_sizes[safe], 0).sum(axis=1).astype(np.int64)
    ready_s = (
        np.where(present, order_ready_s[safe], np.iinfo(np.int64).min)
        .max(axis=1, initial=np.iinfo(np.int64).min)
        .astype(np.int64)
    )
    used = np.flatnonzero(modes_used)
    sequences, offsets_s = _sequence_bundles(
        orders,
        n_stops,
        ready_s,
        np.ascontiguousarray(shop_order_s[used]),
        np.ascontiguousarray(order_order_s[used]),
        shops,
        order_placed_s,
        order_promised_s,
        permutations,
        permutation_starts,
        now_s,
        pickup_s,
        handoff_s,
    )
    n_modes = shop_order_s.shape[0]
    full_sequences = np.full((orders.shape[0], n_modes, limits.max_stops), -1, np.int64)
    full_offsets_s = np.zeros((orders.shape[0], n_modes, limits.max_stops), np.int64)
    full_sequences[:, used] = sequences
    full_offsets_s[:, used] = offsets_s
    return Bundles(orders, n_stops, shops, sizes, ready_s, full_sequences, full_offsets_s)
