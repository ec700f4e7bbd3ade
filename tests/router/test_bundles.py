"""Tests of router/bundles.py: candidate bundles are valid and optimally sequenced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.bundles import (
    LATE_ORDER_COST,
    LATE_WEIGHT,
    BundleLimits,
    Bundles,
    build_bundles,
    unique_rows,
)
from tests import naive

SHOPS = ((34.5965, 119.2215), (34.6010, 119.2290))
NOW_S = 36_000
PICKUP_S = 60
HANDOFF_S = 90

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Case:
    """Inputs of build_bundles as plain lists, plus the arrays built from them."""

    shops: list[naive.Point]
    drops: list[naive.Point]
    order_shops: list[int]
    sizes: list[int]
    placed_s: list[int]
    ready_s: list[int]
    promised_s: list[int]
    shop_max_capacity: list[int]
    modes_used: list[bool]
    limits: BundleLimits

    @property
    def n_orders(self) -> int:
        return len(self.drops)

    def shop_order_s(self) -> list[list[list[int]]]:
        """Twin travel seconds ``[mode][shop][order]``."""
        return naive.travel_s_matrices(
            naive.distance_matrix_m(self.shops, self.drops), naive.SPEEDS_MPS
        )

    def order_order_s(self) -> list[list[list[int]]]:
        """Twin travel seconds ``[mode][order][order]``."""
        return naive.travel_s_matrices(
            naive.distance_matrix_m(self.drops, self.drops), naive.SPEEDS_MPS
        )

    def build(self) -> Bundles:
        def ints(values: Any) -> np.ndarray:
            return np.array(values, dtype=np.int64)

        return build_bundles(
            now_s=NOW_S,
            order_shops=ints(self.order_shops),
            order_sizes=ints(self.sizes),
            order_ready_s=ints(self.ready_s),
            order_placed_s=ints(self.placed_s),
            order_promised_s=ints(self.promised_s),
            order_distances_m=np.array(naive.distance_matrix_m(self.drops, self.drops)),
            shop_order_s=ints(self.shop_order_s()),
            order_order_s=ints(self.order_order_s()),
            shop_max_capacity=ints(self.shop_max_capacity),
            modes_used=np.array(self.modes_used, dtype=np.bool_),
            pickup_s=PICKUP_S,
            handoff_s=HANDOFF_S,
            limits=self.limits,
        )


@st.composite
def cases(draw: st.DrawFn, limits: BundleLimits | None = None) -> Case:
    """Random snapshots of 1-2 shops and 1-40 orders close together (so that bundles form)."""
    n_shops = draw(st.integers(1, 2))
    n_orders = draw(st.integers(1, 40))
    offset = st.floats(-0.006, 0.006, allow_nan=False)
    order_shops = [draw(st.integers(0, n_shops - 1)) for _ in range(n_orders)]
    drops = [(SHOPS[s][0] + draw(offset), SHOPS[s][1] + draw(offset)) for s in order_shops]
    placed_s = [NOW_S - draw(st.integers(0, 1800)) for _ in range(n_orders)]
    ready_s = [p + draw(st.integers(0, 1500)) for p in placed_s]
    promised_s = [p + draw(st.integers(300, 2400)) for p in placed_s]
    modes_used = draw(st.lists(st.booleans(), min_size=3, max_size=3).filter(any))
    return Case(
        shops=list(SHOPS[:n_shops]),
        drops=drops,
        order_shops=order_shops,
        sizes=[draw(st.sampled_from((1, 1, 1, 2, 3, 5, 7))) for _ in range(n_orders)],
        placed_s=placed_s,
        ready_s=ready_s,
        promised_s=promised_s,
        shop_max_capacity=[draw(st.integers(0, 6)) for _ in range(n_shops)],
        modes_used=modes_used,
        limits=limits or BundleLimits(),
    )


def _members(bundles: Bundles, b: int) -> list[int]:
    return [int(o) for o in bundles.orders[b] if o >= 0]


@SETTINGS
@given(cases())
def test_bundles_are_valid(case: Case) -> None:
    """Bundles are of one shop, within max_stops, capacity and ready spread, and not repeated."""
    bundles = case.build()
    limits = case.limits
    assert bundles.n_bundles <= case.n_orders * 2**limits.neighbours
    seen: set[tuple[int, ...]] = set()
    for b in range(bundles.n_bundles):
        members = _members(bundles, b)
        assert 1 <= len(members) <= limits.max_stops
        assert len(set(members)) == len(members), "an order twice in one bundle"
        assert bundles.n_stops[b] == len(members)
        assert all(o == -1 for o in bundles.orders[b, len(members) :]), "padding is -1 at the end"
        shops = {case.order_shops[o] for o in members}
        assert shops == {int(bundles.shops[b])}, "a bundle mixes shops"
        size = sum(case.sizes[o] for o in members)
        assert bundles.sizes[b] == size
        assert size <= case.shop_max_capacity[int(bundles.shops[b])]
        readies = [case.ready_s[o] for o in members]
        assert bundles.ready_s[b] == max(readies)
        # the spread counts from now: an order ready long ago is ready now
        ready_from_now = [max(r, NOW_S) for r in readies]
        assert max(ready_from_now) - min(ready_from_now) <= limits.ready_spread_s
        key = tuple(sorted(members))
        assert key not in seen, f"duplicate bundle {key}"
        seen.add(key)


@SETTINGS
@given(cases())
def test_every_order_that_fits_has_its_singleton(case: Case) -> None:
    """Each order no larger than its shop's largest capacity is a bundle on its own."""
    bundles = case.build()
    singletons = {
        _members(bundles, b)[0] for b in range(bundles.n_bundles) if bundles.n_stops[b] == 1
    }
    fits = {
        o
        for o in range(case.n_orders)
        if case.sizes[o] <= case.shop_max_capacity[case.order_shops[o]]
    }
    assert singletons == fits


@SETTINGS
@given(cases())
def test_sequences_are_optimal(case: Case) -> None:
    """Each bundle's sequence per used mode scores exactly the naive best over all permutations."""
    bundles = case.build()
    shop_order_s = case.shop_order_s()
    order_order_s = case.order_order_s()
    for b in range(bundles.n_bundles):
        members = _members(bundles, b)
        k = len(members)
        shop = int(bundles.shops[b])
        depart_s = naive.bundle_depart_s(NOW_S, members, case.ready_s, PICKUP_S)
        for mode, used in enumerate(case.modes_used):
            sequence = [int(o) for o in bundles.sequences[b, mode, :k]]
            if not used:
                assert (bundles.sequences[b, mode] == -1).all(), "an unused mode was sequenced"
                continue
            assert sorted(sequence) == sorted(members), "the sequence is not of the bundle"
            assert (bundles.sequences[b, mode, k:] == -1).all()
            first_leg_s = shop_order_s[mode][shop]
            legs_s = order_order_s[mode]
            delivered_s = naive.delivered_times_s(
                depart_s, sequence, first_leg_s, legs_s, HANDOFF_S
            )
            assert (bundles.offsets_s[b, mode, :k] + depart_s).tolist() == delivered_s
            got = naive.sequence_score(
                sequence, depart_s, first_leg_s, legs_s, HANDOFF_S, case.placed_s, case.promised_s
            )
            best = naive.best_sequence_score(
                members,
                NOW_S,
                first_leg_s,
                legs_s,
                PICKUP_S,
                HANDOFF_S,
                case.placed_s,
                case.ready_s,
                case.promised_s,
            )
            assert got == best


@SETTINGS
@given(
    st.integers(0, 4).flatmap(lambda n: st.tuples(st.just(n), cases(BundleLimits(neighbours=n))))
)
def test_bundle_count_grows_linearly(args: tuple[int, Case]) -> None:
    """There are at most n_orders * 2**neighbours bundles."""
    neighbours, case = args
    assert case.build().n_bundles <= case.n_orders * 2**neighbours


def test_two_orders_hand_checked() -> None:
    """Two orders on a line from the shop are bundled and delivered nearer first."""
    shop = SHOPS[0]
    near, far = (shop[0] + 0.002, shop[1]), (shop[0] + 0.004, shop[1])
    case = Case(
        shops=[shop],
        drops=[far, near],
        order_shops=[0, 0],
        sizes=[1, 1],
        placed_s=[NOW_S, NOW_S],
        ready_s=[NOW_S, NOW_S],
        promised_s=[NOW_S + 1800] * 2,
        shop_max_capacity=[4],
        modes_used=[False, False, True],
        limits=BundleLimits(),
    )
    bundles = case.build()
    assert sorted(tuple(_members(bundles, b)) for b in range(bundles.n_bundles)) == [
        (0,),
        (0, 1),
        (1,),
    ]
    pair = next(b for b in range(bundles.n_bundles) if bundles.n_stops[b] == 2)
    assert bundles.sequences[pair, 2, :2].tolist() == [1, 0]
    # ebike 5 m/s; one leg of 0.002 degree = 222.39 m arc * 1.3 = 289.11 m -> 58 s
    assert bundles.offsets_s[pair, 2, :2].tolist() == [58 + 90, 58 + 90 + 58 + 90]
    assert (LATE_WEIGHT, LATE_ORDER_COST) == (naive.LATE_WEIGHT, naive.LATE_ORDER_COST)


def test_capacity_zero_shop_has_no_bundles() -> None:
    """Orders of a shop that no rider serves (max capacity 0) get no bundle at all."""
    shop = SHOPS[0]
    case = Case(
        shops=[shop],
        drops=[(shop[0] + 0.001, shop[1])],
        order_shops=[0],
        sizes=[1],
        placed_s=[NOW_S],
        ready_s=[NOW_S],
        promised_s=[NOW_S + 1800],
        shop_max_capacity=[0],
        modes_used=[True, True, True],
        limits=BundleLimits(),
    )
    assert case.build().n_bundles == 0


@settings(max_examples=60, deadline=None)
@given(
    n_values=st.sampled_from([1, 7, 300, 10**5]),
    width=st.integers(1, 6),
    n_rows=st.integers(0, 300),
    seed=st.integers(0, 2**31),
)
def test_unique_rows_is_numpys_unique(n_values: int, width: int, n_rows: int, seed: int) -> None:
    """Both of its ways (one key a row; lexsort when the keys would overflow) give exactly
    ``np.unique(rows, axis=0)``, duplicates and -1 padding included."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(-1, n_values, (n_rows, width)).astype(np.int64)
    rows = np.concatenate([rows, rows[: n_rows // 3]])  # some rows twice
    expected = np.unique(rows, axis=0) if rows.shape[0] else rows
    assert np.array_equal(unique_rows(rows, n_values), expected)
