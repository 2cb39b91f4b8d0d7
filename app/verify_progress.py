"""``kappa verify``'s progress bar: records read of the records to read, rate and ETA."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class VerifyProgress:
    """On stderr, so that stdout holds only the report (and ``--json`` stays parseable)."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("verify: reading records"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f} records/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task: Any = None

    def __enter__(self) -> VerifyProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, done: int, total: int) -> None:
        """A read has done ``done`` of its ``total`` records (a second read, of what
        arrived meanwhile, starts a new bar)."""
        if self._task is None or done < self._progress.tasks[self._task].completed:
            self._task = self._progress.add_task("read", total=total, rate=0.0)
        task = self._progress.tasks[self._task]
        elapsed = task.elapsed or 0.0
        rate = done / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=done, total=total, rate=rate)
