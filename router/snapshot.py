"""What a dispatch policy sees at one tick (structure of arrays), and what it answers.

Indices in a ``Decision`` refer to positions in the ``Snapshot`` arrays. Times are integer
seconds from the scenario start; modes are indices into ``router.travel.MODES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from router.jit import kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NO_TIME = -1


@dataclass(frozen=True)
class Snapshot:
    """Pending orders (revealed, accepted, not committed), riders still on the roster, shops."""

    now_s: int
    detour: float
    speeds_mps: FloatArray  # by mode index
    pickup_s: int
    handoff_s: int
    shop_lats: FloatArray
    shop_lons: FloatArray
    order_keys: IntArray  # the caller's identifiers, carried through untouched
    order_shops: IntArray
    order_lats: FloatArray
    order_lons: FloatArray
    order_sizes: IntArray
    order_placed_s: IntArray
    order_ready_s: IntArray
    order_promised_s: IntArray
    rider_keys: IntArray
    rider_modes: IntArray
    rider_capacities: IntArray
    rider_lats: FloatArray  # where the rider is, or will be when free
    rider_lons: FloatArray
    rider_free_s: IntArray  # when the rider's committed work ends
    rider_serves: BoolArray  # (n_riders, n_shops)
    rider_shift_starts_s: IntArray  # (n_riders, max_shifts), padded with NO_TIME
    rider_shift_ends_s: IntArray
    # the travel rule (router.travel.TravelMetric): "euclidean" reads lat/lon as planar y/x
    # metres; travel times are whole multiples of time_unit_s
    metric: str = "haversine"
    time_unit_s: int = 1
    # riders paid per order above an hourly guarantee (MDRP): the orders each rider can still
    # carry within its guarantee (None: no such pay rule) and the cost of each order beyond
    rider_quota_left: IntArray | None = None
    extra_order_cost: int = 0
    # orders a rider already at their shop holds (a committed trip it may still change, see
    # router.simulate.ReadyReveal.rebind_at_shop): the holding rider's index, -1 for none
    order_held_by: IntArray | None = None

    @property
    def n_orders(self) -> int:
        return int(self.order_keys.shape[0])

    @property
    def n_riders(self) -> int:
        return int(self.rider_keys.shape[0])

    @property
    def n_shops(self) -> int:
        return int(self.shop_lats.shape[0])


@dataclass(frozen=True)
class PlannedTrip:
    """One rider's trip in a plan, with the times the rules give it."""

    rider: int
    shop: int
    orders: IntArray  # snapshot order indices in delivery sequence
    leave_s: int
    arrive_shop_s: int
    depart_s: int
    delivered_s: IntArray
    committed: bool


@dataclass
class Decision:
    """A policy's answer: trips (committed now or tentative) and why each other order waits."""

    trips: list[PlannedTrip] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # order index -> reason


class Policy(Protocol):
    name: str

    def decide(self, snapshot: Snapshot) -> Decision: ...


@kernel
def depart_within_shift(earliest_s: int, shift_starts_s: IntArray, shift_ends_s: IntArray) -> int:
    """The first time >= ``earliest_s`` inside a shift (closed intervals), or NO_TIME."""
    for k in range(shift_starts_s.shape[0]):
        start_s = shift_starts_s[k]
        end_s = shift_ends_s[k]
        if start_s < 0:
            break
        if earliest_s <= end_s:
            return max(earliest_s, start_s)
    return NO_TIME


def pad_shifts(shifts: list[tuple[tuple[int, int], ...]]) -> tuple[IntArray, IntArray]:
    """Shift lists as two padded ``(n_riders, max_shifts)`` arrays of starts and ends."""
    width = max((len(s) for s in shifts), default=1) or 1
    starts = np.full((len(shifts), width), NO_TIME, dtype=np.int64)
    ends = np.full((len(shifts), width), NO_TIME, dtype=np.int64)
    for i, rider_shifts in enumerate(shifts):
        for k, (start_s, end_s) in enumerate(rider_shifts):
            starts[i, k] = start_s
            ends[i, k] = end_s
    return starts, ends
