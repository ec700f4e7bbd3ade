"""The dispatch engine's decisions computed in a process of their own (``Planner``).

A tick's plan is pure computation on arrays (``router.dispatch.QuarterhourPolicy.decide`` of a
``router.snapshot.Snapshot``), mostly Python and NumPy glue around the Numba kernels and
CP-SAT: in the service's process it held the GIL for about 3-5 ms a shop and tick, in bursts of
every shop with work at once, while requests waited for it (under ``make load`` the dispatch's
reads and plans were a sixth of the time the GIL was held, session 8). In a worker process it
holds only its own; the service's thread waits for the answer without the GIL.

The worker is spawned (not forked: the service has threads and open database connections) when
the service starts, which waits for it to warm its kernels up. Should it die or hang, the plan
of that shop is computed in the service's process, the worker is replaced, and dispatch goes
on. The same snapshot gives the same decision in either process.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from router.dispatch import QuarterhourPolicy
from router.dispatch import warm_up as warm_up_dispatch
from router.snapshot import Decision, Snapshot

logger = logging.getLogger("api.planner")

# Longest wait for the worker's decision: CP-SAT stops itself at ``time_limit_s`` (0.4 s); this
# only catches a worker that hangs (then the plan is made here and the worker replaced).
DECISION_TIMEOUT_S = 30.0


# Where a tick's decision is made: ``decide_in_process`` or ``Planner.decide``.
Decide = Callable[[Snapshot, int], Decision]


def decide_in_process(snapshot: Snapshot, tick_s: int) -> Decision:
    """The Quarterhour policy's decision on ``snapshot`` for a tick of ``tick_s`` (in the
    process that calls it)."""
    return QuarterhourPolicy(tick_s=tick_s).decide(snapshot)


def _warm_worker() -> None:
    # Ctrl-C reaches the whole process group: the service stops its worker itself, after
    # its last plan, so the worker must not die of the interrupt first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up_dispatch()


def _ready() -> bool:
    return True  # run after ``_warm_worker``: the worker is warm once this answers


class Planner:
    """``decide`` in a worker process (see the module docstring); ``start`` it first, ``stop``
    it at the end. Thread-safe: the dispatch's worker threads call ``decide`` at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def start(self, *, wait: bool = True) -> None:
        """Spawn the worker and, with ``wait``, return once it has warmed its kernels up (a
        few seconds: the service starts with a ready planner, not with one that competes with
        the first requests for the CPU)."""
        with self._lock:
            if self._pool is not None:
                return
            self._pool = pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_worker,
            )
        if wait:
            pool.submit(_ready).result(timeout=DECISION_TIMEOUT_S)

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def decide(self, snapshot: Snapshot, tick_s: int) -> Decision:
        """``decide_in_process(snapshot, tick_s)`` in the worker; here when the worker is not
        started, or when it failed (it is replaced then)."""
        pool = self._pool
        if pool is None:
            return decide_in_process(snapshot, tick_s)
        try:
            return pool.submit(decide_in_process, snapshot, tick_s).result(
                timeout=DECISION_TIMEOUT_S
            )
        except (BrokenProcessPool, TimeoutError) as error:
            logger.warning("the planner process failed (%r); replaced, this plan made here", error)
            self._replace(pool)
            return decide_in_process(snapshot, tick_s)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another thread replaced it already
            self._pool = None
        processes = list((broken._processes or {}).values())
        broken.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()  # a hung worker would otherwise live on
        self.start(wait=False)  # the plan at hand is made here meanwhile
