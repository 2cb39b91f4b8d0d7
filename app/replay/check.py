"""What a replay checks before it produces: how many bad rows it accepts, and how many
events would come out late.

Both are measured in the replay's first pass over the files, which validates every row
and produces nothing (``app/replay/run.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import pyarrow as pa
import pyarrow.compute as pc

_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class BadRowLimit:
    """How many bad rows a replay accepts: a count, or a share of the rows read.

    Written as a whole number of rows (``10``), a percentage (``0.1%``) or a fraction
    below 1 (``0.001``); ``0`` accepts none.
    """

    text: str = "0"
    count: int | None = 0
    share: Fraction | None = None

    @classmethod
    def parse(cls, text: str) -> BadRowLimit:
        """Raises ValueError, saying what is accepted, for anything else."""
        stripped = text.strip()
        if _COUNT.fullmatch(stripped):
            return cls(stripped, count=int(stripped))
        percent = stripped.endswith("%")
        try:
            number = Decimal(stripped.removesuffix("%"))
        except InvalidOperation:
            number = Decimal("NaN")
        share = number / 100 if percent else number
        if not (number.is_finite() and 0 <= share <= 1) or (not percent and number >= 1):
            raise ValueError(
                f"{text!r} is not a number of rows (10), a percentage (0.1%) "
                "or a fraction below 1 (0.001)"
            )
        return cls(stripped, count=None, share=Fraction(share))

    def allows(self, bad_rows: int, rows: int) -> bool:
        """Whether ``bad_rows`` bad rows out of ``rows`` read are within the limit."""
        if self.count is not None:
            return bad_rows <= self.count
        assert self.share is not None
        return bad_rows <= self.share * rows


@dataclass
class Disorder:
    """kappa's lateness policy folded over events in the order they will be produced.

    An event is late iff its time is before its partition's watermark: the newest event
    time seen on the partition before it, minus the allowed lateness
    (``tables.watermark``). ``late`` counts such events, as a worker would if the
    partitions started empty; ``max_behind_ms`` is the furthest any event is behind the
    newest before it on its partition.
    """

    lateness_ms: int
    late: int = 0
    events: int = 0
    max_behind_ms: int = 0
    _newest: dict[int, int] = field(default_factory=dict)

    def add(self, partitions: pa.Int64Array, ts_ms: pa.Int64Array) -> None:
        """Fold in events in production order; ``partitions`` says where each goes."""
        for partition in pc.unique(partitions).to_pylist():
            times = ts_ms.filter(pc.equal(partitions, partition))
            earlier = self._newest.get(partition)
            newest = pc.cumulative_max(times)  # the newest time up to each event
            if earlier is not None:
                newest = pc.max_element_wise(newest, earlier)
            # The newest time before each event; earlier batches' for the first one.
            before = pa.concat_arrays([pa.array([earlier], pa.int64()), newest[:-1]])
            behind = pc.subtract(before, times)  # null for a partition's first event
            self.late += pc.sum(pc.greater(behind, self.lateness_ms)).as_py() or 0
            self.max_behind_ms = max(self.max_behind_ms, pc.max(behind).as_py() or 0)
            self._newest[partition] = newest[-1].as_py()
        self.events += len(ts_ms)
