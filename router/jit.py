"""The one place that holds the Numba JIT options of the engine's kernels."""

from numba import njit

# cache: compiled kernels persist in __pycache__ (``make clean`` removes them);
# nogil: a tick may run beside the service's threads.
kernel = njit(cache=True, nogil=True)
