"""Baseline ``nearest``: first come first served, one order per trip, earliest-delivering rider.

What most small shops do by hand: take the oldest order, give it to the rider who can bring it
to the door soonest, repeat. Times are the rules of DESIGN.md, computed exactly.
"""

from __future__ import annotations

import numpy as np

from router.jit import kernel
from router.snapshot import NO_TIME, Decision, IntArray, PlannedTrip, Snapshot, depart_within_shift
from router.travel import distance_matrix_m, travel_s_matrices

# Outcome codes of the kernel, one per order.
_COMMIT = 0
_NO_RIDER = 1  # no rider serves the shop with enough capacity
_ALL_USED = 2  # every suitable rider already has a trip in this decision
_OUTSIDE_SHIFTS = 3  # no suitable rider could depart within a shift
_BUSY = 4  # the best rider is not free within the tick


@kernel
def _assign_nearest(
    now_s: int,
    free_by_s: int,
    pickup_s: int,
    handoff_s: int,
    sequence: IntArray,
    order_shops: IntArray,
    order_sizes: IntArray,
    order_ready_s: IntArray,
    shop_drop_s: IntArray,
    rider_modes: IntArray,
    rider_capacities: IntArray,
    rider_free_s: IntArray,
    rider_shop_s: IntArray,
    rider_serves: np.ndarray,
    shift_starts_s: IntArray,
    shift_ends_s: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """For each order (in ``sequence``): chosen rider (-1 if none), outcome code, its time.

    ``shop_drop_s[m, o]`` is the travel time of mode ``m`` from order ``o``'s shop to its
    drop-off; ``rider_shop_s[r, s]`` the travel time of rider ``r`` (its own mode) to shop ``s``.
    The time is the delivery time for a commit and the best rider's ``free_s`` when busy.
    """
    n_orders = order_shops.shape[0]
    n_riders = rider_modes.shape[0]
    riders = np.full(n_orders, -1, dtype=np.int64)
    codes = np.full(n_orders, _NO_RIDER, dtype=np.int64)
    times = np.full(n_orders, NO_TIME, dtype=np.int64)
    used = np.zeros(n_riders, dtype=np.bool_)
    for o in sequence:
        shop = order_shops[o]
        best = -1
        best_delivered_s = 0
        suitable = False
        unused = False
        for r in range(n_riders):
            if not rider_serves[r, shop] or rider_capacities[r] < order_sizes[o]:
                continue
            suitable = True
            if used[r]:
                continue
            unused = True
            leave_s = max(now_s, rider_free_s[r])
            earliest_s = max(leave_s + rider_shop_s[r, shop], order_ready_s[o]) + pickup_s
            depart_s = depart_within_shift(earliest_s, shift_starts_s[r], shift_ends_s[r])
            if depart_s == NO_TIME:
                continue
            delivered_s = depart_s + shop_drop_s[rider_modes[r], o] + handoff_s
            if best < 0 or delivered_s < best_delivered_s:
                best = r
                best_delivered_s = delivered_s
        if best < 0:
            codes[o] = _OUTSIDE_SHIFTS if unused else (_ALL_USED if suitable else _NO_RIDER)
        elif rider_free_s[best] > free_by_s:
            riders[o] = best
            codes[o] = _BUSY
            times[o] = rider_free_s[best]
        else:
            used[best] = True
            riders[o] = best
            codes[o] = _COMMIT
            times[o] = best_delivered_s
    return riders, codes, times


class NearestPolicy:
    """Each order, oldest first, alone to the rider who can deliver it earliest."""

    name = "nearest"

    def __init__(self, tick_s: int = 30) -> None:
        if tick_s < 0:
            raise ValueError(f"tick_s: expected an integer >= 0, got {tick_s!r}")
        self.tick_s = int(tick_s)

    def decide(self, snapshot: Snapshot) -> Decision:
        """Commit one-order trips for the oldest orders whose best rider is free this tick."""
        s = snapshot
        decision = Decision()
        if s.n_orders == 0:
            return decision
        if s.n_riders == 0:
            decision.reasons = dict.fromkeys(range(s.n_orders), "no rider")
            return decision
        order_shops = np.ascontiguousarray(s.order_shops, dtype=np.int64)
        # Travel shop -> drop-off by mode, (n_modes, n_orders); rider -> shop by own mode.
        shop_drop_m = distance_matrix_m(
            s.shop_lats, s.shop_lons, s.order_lats, s.order_lons, s.detour
        )[order_shops, np.arange(s.n_orders)]
        shop_drop_s = travel_s_matrices(shop_drop_m[None, :], s.speeds_mps)[:, 0, :]
        rider_modes = np.ascontiguousarray(s.rider_modes, dtype=np.int64)
        rider_shop_s = travel_s_matrices(
            distance_matrix_m(s.rider_lats, s.rider_lons, s.shop_lats, s.shop_lons, s.detour),
            s.speeds_mps,
        )[rider_modes, np.arange(s.n_riders), :]
        sequence = np.argsort(np.asarray(s.order_placed_s), kind="stable").astype(np.int64)
        free_by_s = s.now_s + self.tick_s
        riders, codes, times = _assign_nearest(
            int(s.now_s),
            int(free_by_s),
            int(s.pickup_s),
            int(s.handoff_s),
            sequence,
            order_shops,
            np.ascontiguousarray(s.order_sizes, dtype=np.int64),
            np.ascontiguousarray(s.order_ready_s, dtype=np.int64),
            np.ascontiguousarray(shop_drop_s),
            rider_modes,
            np.ascontiguousarray(s.rider_capacities, dtype=np.int64),
            np.ascontiguousarray(s.rider_free_s, dtype=np.int64),
            np.ascontiguousarray(rider_shop_s),
            np.ascontiguousarray(s.rider_serves, dtype=np.bool_),
            np.ascontiguousarray(s.rider_shift_starts_s, dtype=np.int64),
            np.ascontiguousarray(s.rider_shift_ends_s, dtype=np.int64),
        )
        for o in sequence.tolist():
            code = int(codes[o])
            if code == _COMMIT:
                r = int(riders[o])
                shop = int(order_shops[o])
                leave_s = max(int(s.now_s), int(s.rider_free_s[r]))
                arrive_s = leave_s + int(rider_shop_s[r, shop])
                depart_s = int(
                    depart_within_shift(
                        max(arrive_s, int(s.order_ready_s[o])) + int(s.pickup_s),
                        s.rider_shift_starts_s[r],
                        s.rider_shift_ends_s[r],
                    )
                )
                decision.trips.append(
                    PlannedTrip(
                        rider=r,
                        shop=shop,
                        orders=np.array([o], dtype=np.int64),
                        leave_s=leave_s,
                        arrive_shop_s=arrive_s,
                        depart_s=depart_s,
                        delivered_s=np.array([int(times[o])], dtype=np.int64),
                        committed=True,
                    )
                )
            elif code == _BUSY:
                decision.reasons[o] = f"no rider free until {int(times[o])}"
            elif code == _ALL_USED:
                decision.reasons[o] = "no rider left this tick"
            elif code == _OUTSIDE_SHIFTS:
                decision.reasons[o] = "outside shifts"
            else:
                decision.reasons[o] = "capacity: no rider serving its shop can carry it"
        return decision
