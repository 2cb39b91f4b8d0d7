"""``kappa verify``'s progress: one line per step; the reads with a bar, records/s and
the ETA, the steps of unknown length with the time they have taken."""

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
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._step: str | None = None
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

    def update(self, step: str, done: int, total: int | None) -> None:
        """``step`` has done ``done`` of ``total`` (None: unknown); a new step ends the
        previous one."""
        if step != self._step:
            if self._task is not None:
                task = self._progress.tasks[self._task]
                self._progress.update(
                    self._task, total=task.completed or 1, completed=task.completed or 1
                )
                self._progress.stop_task(self._task)
            self._step = step
            if total == 0:  # nothing to do: no line
                self._task = None
                return
            self._task = self._progress.add_task(step, total=total, rate=0.0)
        if self._task is None:
            return
        task = self._progress.tasks[self._task]
        elapsed = task.elapsed or 0.0
        rate = done / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=done, total=total, rate=rate)
