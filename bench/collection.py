"""Garbage collected in a bench's process as the worker collects it.

The worker turns Python's automatic collection off, freezes the objects alive at its
start and collects cycles every ``GC_INTERVAL_S`` (``app.worker.take_over_garbage_collection``).
A bench that applies batches in a loop of its own does the same, checked between batches,
so that it measures what the worker pays: with automatic collection, two thirds of a
hopping run's time was the collector walking the batch's live objects.
"""

from __future__ import annotations

import gc
import time

from app.worker import GC_INTERVAL_S


class TimedCollection:
    """Cycles collected every ``GC_INTERVAL_S``, as the worker's timer does, and the
    longest collection: the event loop's stall when the worker's timer fires."""

    def __init__(self) -> None:
        gc.freeze()
        gc.disable()
        self.longest_s = 0.0
        self._last = time.perf_counter()

    def tick(self) -> None:
        """Between two batches: collect if the interval has passed."""
        if time.perf_counter() - self._last >= GC_INTERVAL_S:
            started = time.perf_counter()
            gc.collect()
            self._last = time.perf_counter()
            self.longest_s = max(self.longest_s, self._last - started)

    def finish(self) -> None:
        """After the measured part: Python's own collection back, as the process had it
        before, for the rest of the run and its exit. (With collection left off, one exit
        in about a dozen crashed in RocksDB's teardown, after the run's output.)"""
        gc.unfreeze()
        gc.enable()
        gc.collect()
