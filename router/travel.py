"""Travel and timing rules of DESIGN.md as Numba kernels.

Distance is haversine on a sphere of radius 6,371,008.8 m times a detour factor; travel time is
``ceil(distance_m / speed_mps)`` whole seconds, computed in double precision.

A second rule set serves planar benchmarks (the Grubhub MDRP instances): metric ``euclidean``
reads the ``lat``/``lon`` arguments as planar ``y``/``x`` metres, and a time unit of
``time_unit_s`` seconds makes travel ``time_unit_s * ceil(distance_m / (speed_mps *
time_unit_s))``, so times stay whole units (minutes for MDRP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router.jit import kernel

EARTH_RADIUS_M = 6_371_008.8
MODES = ("walk", "bike", "ebike")
MODE_INDEX = {name: index for index, name in enumerate(MODES)}
METRICS = ("haversine", "euclidean")
HAVERSINE, EUCLIDEAN = 0, 1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@kernel
def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@kernel
def _planar_m(y1: float, x1: float, y2: float, x2: float) -> float:
    return math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)


@kernel
def _point_m(metric: int, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    if metric == EUCLIDEAN:
        return _planar_m(lat1, lon1, lat2, lon2)
    return _haversine_m(lat1, lon1, lat2, lon2)


@kernel
def _seconds(distance_m: float, speed_mps: float) -> int:
    return math.ceil(distance_m / speed_mps)


@kernel
def _unit_speed(speed_mps: float, time_unit_s: int) -> float:
    # metres per unit, snapped so that e.g. (427 / 60) * 60 is exactly 427 again
    return round(speed_mps * time_unit_s, 9)


@kernel
def _unit_seconds(distance_m: float, unit_speed: float, time_unit_s: int) -> int:
    """``time_unit_s`` times the least whole k with k * unit_speed >= distance_m."""
    if time_unit_s == 1:
        return math.ceil(distance_m / unit_speed)
    k = math.ceil(distance_m / unit_speed)
    # the ceiling decided in metres, so a quotient rounded just above k cannot add a unit
    if k > 0 and (k - 1) * unit_speed >= distance_m:
        k -= 1
    return k * time_unit_s


@kernel
def _distance_matrix_m(
    from_lats: FloatArray,
    from_lons: FloatArray,
    to_lats: FloatArray,
    to_lons: FloatArray,
    detour: float,
    metric: int,
) -> FloatArray:
    n_from = from_lats.shape[0]
    n_to = to_lats.shape[0]
    out = np.empty((n_from, n_to), dtype=np.float64)
    for i in range(n_from):
        for j in range(n_to):
            out[i, j] = (
                _point_m(metric, from_lats[i], from_lons[i], to_lats[j], to_lons[j]) * detour
            )
    return out


@kernel
def _travel_s_matrices(
    distances_m: FloatArray, speeds_mps: FloatArray, time_unit_s: int
) -> IntArray:
    n_modes = speeds_mps.shape[0]
    n_from, n_to = distances_m.shape
    out = np.empty((n_modes, n_from, n_to), dtype=np.int64)
    for m in range(n_modes):
        unit_speed = _unit_speed(speeds_mps[m], time_unit_s)
        for i in range(n_from):
            for j in range(n_to):
                out[m, i, j] = _unit_seconds(distances_m[i, j], unit_speed, time_unit_s)
    return out


@dataclass(frozen=True)
class TravelMetric:
    """Which distance and time rounding a problem uses (the default is DESIGN.md's)."""

    metric: str = "haversine"  # or "euclidean": lat/lon hold planar y/x metres
    time_unit_s: int = 1  # travel times are whole multiples of this

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        if self.time_unit_s < 1:
            raise ValueError(f"time_unit_s: expected a positive integer, got {self.time_unit_s}")

    @property
    def code(self) -> int:
        """The metric as the kernels take it."""
        return METRICS.index(self.metric)

    def distance_m(
        self, lat1: float, lon1: float, lat2: float, lon2: float, detour: float
    ) -> float:
        """Road distance in metres between two points under this metric."""
        return float(_point_m(self.code, lat1, lon1, lat2, lon2) * detour)

    def travel_s(
        self, lat1: float, lon1: float, lat2: float, lon2: float, detour: float, speed_mps: float
    ) -> int:
        """Travel time in whole units (as seconds) between two points for one speed."""
        distance = _point_m(self.code, lat1, lon1, lat2, lon2) * detour
        unit_speed = _unit_speed(speed_mps, self.time_unit_s)
        return int(_unit_seconds(distance, unit_speed, self.time_unit_s))


DEFAULT_METRIC = TravelMetric()


def distance_matrix_m(
    from_lats: npt.ArrayLike,
    from_lons: npt.ArrayLike,
    to_lats: npt.ArrayLike,
    to_lons: npt.ArrayLike,
    detour: float,
    metric: TravelMetric = DEFAULT_METRIC,
) -> FloatArray:
    """Road distances (metric distance times detour) from every ``from`` to every ``to`` point."""
    return _distance_matrix_m(
        np.ascontiguousarray(from_lats, dtype=np.float64),
        np.ascontiguousarray(from_lons, dtype=np.float64),
        np.ascontiguousarray(to_lats, dtype=np.float64),
        np.ascontiguousarray(to_lons, dtype=np.float64),
        float(detour),
        metric.code,
    )


def travel_s_matrices(
    distances_m: npt.ArrayLike, speeds_mps: npt.ArrayLike, time_unit_s: int = 1
) -> IntArray:
    """Whole-unit travel times in seconds, one matrix per mode: ``(n_modes, n_from, n_to)``."""
    return _travel_s_matrices(
        np.ascontiguousarray(distances_m, dtype=np.float64),
        np.ascontiguousarray(speeds_mps, dtype=np.float64),
        int(time_unit_s),
    )


def travel_s(
    lat1: float, lon1: float, lat2: float, lon2: float, detour: float, speed_mps: float
) -> int:
    """Travel time in whole seconds between two points for one speed."""
    return int(_seconds(_haversine_m(lat1, lon1, lat2, lon2) * detour, speed_mps))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float, detour: float) -> float:
    """Road distance in metres between two points."""
    return float(_haversine_m(lat1, lon1, lat2, lon2) * detour)
