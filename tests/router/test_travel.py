"""Tests of router/travel.py against the naive twins and a hand-computed pair."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from router.travel import (
    EARTH_RADIUS_M,
    MODES,
    distance_m,
    distance_matrix_m,
    travel_s,
    travel_s_matrices,
)
from tests import naive

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)

latitudes = st.floats(-90.0, 90.0, allow_nan=False)
longitudes = st.floats(-180.0, 180.0, allow_nan=False)
points = st.lists(st.tuples(latitudes, longitudes), min_size=1, max_size=8)
# Points of one town (about 2 km across), where the engine really works.
local_points = st.lists(
    st.tuples(st.floats(34.58, 34.61, allow_nan=False), st.floats(119.20, 119.24, allow_nan=False)),
    min_size=1,
    max_size=8,
)
detours = st.floats(1.0, 3.0, allow_nan=False)
speeds = st.lists(st.floats(0.5, 20.0, allow_nan=False), min_size=1, max_size=3)


def _matrix(
    from_points: list[naive.Point], to_points: list[naive.Point], detour: float
) -> np.ndarray:
    return distance_matrix_m(
        [p[0] for p in from_points],
        [p[1] for p in from_points],
        [p[0] for p in to_points],
        [p[1] for p in to_points],
        detour,
    )


def test_constants_match_design() -> None:
    """The sphere radius and the mode order are the ones DESIGN.md and the twins use."""
    assert EARTH_RADIUS_M == naive.EARTH_RADIUS_M == 6_371_008.8
    assert MODES == ("walk", "bike", "ebike")


def test_hand_computed_pair() -> None:
    """0.01 degree along a meridian is 1111.9508 m of arc, 1445.5360 m of road at detour 1.3."""
    # arc = 6,371,008.8 m * 0.01 * pi / 180 = 1111.95080 m; road = 1.3 * arc = 1445.53604 m
    road_m = 6_371_008.8 * 0.01 * math.pi / 180 * 1.3
    assert math.isclose(road_m, 1445.53604, rel_tol=1e-8)
    got = _matrix([(34.59, 119.22)], [(34.60, 119.22)], 1.3)
    assert got.shape == (1, 1)
    assert math.isclose(got[0, 0], road_m, rel_tol=1e-9)
    assert math.isclose(distance_m(34.59, 119.22, 34.60, 119.22, 1.3), road_m, rel_tol=1e-9)
    # walk 1445.536 / 1.3 = 1111.95 -> 1112 s; bike / 4.0 = 361.38 -> 362 s; ebike / 5.0 = 289.1
    assert travel_s_matrices(got, [1.3, 4.0, 5.0])[:, 0, 0].tolist() == [1112, 362, 290]
    assert travel_s(34.59, 119.22, 34.60, 119.22, 1.3, 1.3) == 1112


def test_exact_multiple_is_not_rounded_up() -> None:
    """A distance that is an exact multiple of the speed takes exactly that many seconds."""
    assert travel_s_matrices([[0.0, 100.0, 100.5]], [4.0]).tolist() == [[[0, 25, 26]]]


@SETTINGS
@given(points, points, detours)
def test_distance_matrix_matches_naive(
    from_points: list[naive.Point], to_points: list[naive.Point], detour: float
) -> None:
    """distance_matrix_m equals haversine times detour for every pair of random points."""
    got = _matrix(from_points, to_points, detour)
    want = naive.distance_matrix_m(from_points, to_points, detour)
    assert got.shape == (len(from_points), len(to_points))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.array(want), rtol=1e-9, atol=1e-6)


@SETTINGS
@given(st.one_of(points, local_points), detours)
def test_distance_matrix_symmetric_zero_diagonal(pts: list[naive.Point], detour: float) -> None:
    """The distance matrix of a point set with itself is exactly symmetric with a zero diagonal."""
    got = _matrix(pts, pts, detour)
    assert (got == got.T).all()
    assert (np.diag(got) == 0.0).all()
    assert (got >= 0.0).all()


@SETTINGS
@given(local_points, local_points, detours, speeds)
def test_travel_s_matrices_match_naive(
    from_points: list[naive.Point],
    to_points: list[naive.Point],
    detour: float,
    speeds_mps: list[float],
) -> None:
    """travel_s_matrices is ceil(distance / speed) per mode, on the same distances."""
    distances = _matrix(from_points, to_points, detour)
    got = travel_s_matrices(distances, speeds_mps)
    want = naive.travel_s_matrices(distances.tolist(), speeds_mps)
    assert got.dtype == np.int64
    assert got.shape == (len(speeds_mps), len(from_points), len(to_points))
    assert got.tolist() == want


@SETTINGS
@given(local_points, detours, speeds)
def test_travel_s_matrix_symmetric_zero_diagonal(
    pts: list[naive.Point], detour: float, speeds_mps: list[float]
) -> None:
    """Travel seconds within one point set are symmetric with a zero diagonal, for every mode."""
    got = travel_s_matrices(_matrix(pts, pts, detour), speeds_mps)
    for mode in range(len(speeds_mps)):
        assert (got[mode] == got[mode].T).all()
        assert (np.diag(got[mode]) == 0).all()


@SETTINGS
@given(local_points, local_points, detours)
def test_travel_seconds_end_to_end_match_naive(
    from_points: list[naive.Point], to_points: list[naive.Point], detour: float
) -> None:
    """Seconds from kernel distances equal the twins' seconds from twin distances."""
    got = travel_s_matrices(_matrix(from_points, to_points, detour), naive.SPEEDS_MPS)
    want = naive.travel_s_matrices(
        naive.distance_matrix_m(from_points, to_points, detour), naive.SPEEDS_MPS
    )
    assert got.tolist() == want
