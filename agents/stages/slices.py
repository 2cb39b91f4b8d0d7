"""Slices of a fetch sized by time, so that the event loop is never held for long.

A fetch can hold tens of thousands of records per partition, and an event costs from a
few microseconds (one tumbling window) to milliseconds (many hopping windows, closings).
A fixed count of records per slice is either far too small or far too large, so the next
slice's size is the target time over the cost per record measured on the last slice.
Between slices the caller yields to the loop: the API and metrics answer, rebalance
callbacks start (and wait for the batch in hand, see ``BatchLoop.on_revoked``).
"""

from __future__ import annotations

# Records in a fetch's first slice, before any cost is measured: small enough for the
# slowest known workload (hundreds of hopping windows per event) to stay near the target.
FIRST_SLICE = 64
# The most records in one slice: their decoded events need not all be alive at once.
MOST_PER_SLICE = 4096


class SliceSizer:
    """The number of records in the next slice, from the time the last one took."""

    def __init__(
        self, target_s: float, first: int = FIRST_SLICE, most: int = MOST_PER_SLICE
    ) -> None:
        self.target_s = target_s
        self.most = most
        self.size = first

    def took(self, records: int, seconds: float) -> None:
        """A slice of ``records`` records took ``seconds``: size the next one by it. At
        most twice the last size, so one cheap slice does not make the next a long one."""
        if records <= 0:
            return
        fitting = self.most if seconds <= 0 else int(self.target_s * records / seconds)
        self.size = max(1, min(fitting, 2 * records, self.most))
