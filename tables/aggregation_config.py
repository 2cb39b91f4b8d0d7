"""What a pipeline computes, as its state sees it: the values, metrics and windows, the
lateness and the retention; and how an aggregate becomes a window result."""

from __future__ import annotations

from dataclasses import dataclass

from tables.aggregates import ORDER_METRICS, Agg
from tables.records import WindowResult
from tables.windows import PanedKind, Sessions, WindowKind


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    value_names: tuple[str, ...]
    metrics: tuple[str, ...]
    windows: tuple[WindowKind, ...]
    lateness_ms: int
    retention_ms: int

    @property
    def stamped(self) -> bool:
        """Whether a metric needs each event's stamp (``first``, ``last``)."""
        return any(metric in ORDER_METRICS for metric in self.metrics)

    def empty(self) -> Agg:
        """The aggregate of no events, keeping what the metrics need."""
        return Agg.empty(len(self.value_names), self.metrics)

    def window(self, name: str) -> WindowKind:
        for window in self.windows:
            if window.name == name:
                return window
        raise KeyError(name)

    @property
    def paned(self) -> tuple[PanedKind, ...]:
        """The windows fixed by their starts (tumbling, hopping)."""
        return tuple(window for window in self.windows if isinstance(window, PanedKind))

    @property
    def sessions(self) -> tuple[Sessions, ...]:
        """The session windows."""
        return tuple(window for window in self.windows if isinstance(window, Sessions))

    def result(
        self, key: str, window: WindowKind, start: int, end: int, agg: Agg, final: bool
    ) -> WindowResult:
        return WindowResult(
            key=key,
            window=window.name,
            start_ms=start,
            end_ms=end,
            final=final,
            result=agg.result(self.value_names, self.metrics),
        )
