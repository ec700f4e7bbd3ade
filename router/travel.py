"""Travel and timing rules of DESIGN.md as Numba kernels.

Distance is haversine on a sphere of radius 6,371,008.8 m times a detour factor; travel time is
``ceil(distance_m / speed_mps)`` whole seconds, computed in double precision.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from router.jit import kernel

EARTH_RADIUS_M = 6_371_008.8
MODES = ("walk", "bike", "ebike")
MODE_INDEX = {name: index for index, name in enumerate(MODES)}

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
def _seconds(distance_m: float, speed_mps: float) -> int:
    return math.ceil(distance_m / speed_mps)


@kernel
def _distance_matrix_m(
    from_lats: FloatArray,
    from_lons: FloatArray,
    to_lats: FloatArray,
    to_lons: FloatArray,
    detour: float,
) -> FloatArray:
    n_from = from_lats.shape[0]
    n_to = to_lats.shape[0]
    out = np.empty((n_from, n_to), dtype=np.float64)
    for i in range(n_from):
        for j in range(n_to):
            out[i, j] = _haversine_m(from_lats[i], from_lons[i], to_lats[j], to_lons[j]) * detour
    return out


@kernel
def _travel_s_matrices(distances_m: FloatArray, speeds_mps: FloatArray) -> IntArray:
    n_modes = speeds_mps.shape[0]
    n_from, n_to = distances_m.shape
    out = np.empty((n_modes, n_from, n_to), dtype=np.int64)
    for m in range(n_modes):
        for i in range(n_from):
            for j in range(n_to):
                out[m, i, j] = _seconds(distances_m[i, j], speeds_mps[m])
    return out


def distance_matrix_m(
    from_lats: npt.ArrayLike,
    from_lons: npt.ArrayLike,
    to_lats: npt.ArrayLike,
    to_lons: npt.ArrayLike,
    detour: float,
) -> FloatArray:
    """Road distances (haversine times detour) from every ``from`` point to every ``to`` point."""
    return _distance_matrix_m(
        np.ascontiguousarray(from_lats, dtype=np.float64),
        np.ascontiguousarray(from_lons, dtype=np.float64),
        np.ascontiguousarray(to_lats, dtype=np.float64),
        np.ascontiguousarray(to_lons, dtype=np.float64),
        float(detour),
    )


def travel_s_matrices(distances_m: npt.ArrayLike, speeds_mps: npt.ArrayLike) -> IntArray:
    """Whole-second travel times, one matrix per mode: shape ``(n_modes, n_from, n_to)``."""
    return _travel_s_matrices(
        np.ascontiguousarray(distances_m, dtype=np.float64),
        np.ascontiguousarray(speeds_mps, dtype=np.float64),
    )


def travel_s(
    lat1: float, lon1: float, lat2: float, lon2: float, detour: float, speed_mps: float
) -> int:
    """Travel time in whole seconds between two points for one speed."""
    return int(_seconds(_haversine_m(lat1, lon1, lat2, lon2) * detour, speed_mps))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float, detour: float) -> float:
    """Road distance in metres between two points."""
    return float(_haversine_m(lat1, lon1, lat2, lon2) * detour)
