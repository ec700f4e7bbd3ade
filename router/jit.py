"""The one place that holds the Numba JIT options of the engine's kernels."""

from numba import njit

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False}

kernel = njit(**JIT_OPTIONS)
