"""Read-only queries over a pipeline's state, for the API.

A partition that this worker is applying is read through its live state, which holds
the changes not stored yet, so an answer is never older than what the worker has applied;
any other partition is read from its stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tables.aggregates import Agg
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState
from tables.pipeline_tables import PipelineTables
from tables.records import KeyRecord, OpenWindow, WindowResult, closed_key, window_key
from tables.watermark import watermark_of
from tables.windows import PanedKind, Sessions, WindowKind


class StateQueries:
    def __init__(
        self,
        tables: PipelineTables,
        config: AggregationConfig,
        live_state: Callable[[int], TablePartitionState | None],
        running_watermark: Callable[[int], int | None],
    ) -> None:
        self.tables = tables
        self.config = config
        self._live_state = live_state
        self._running_watermark = running_watermark

    def key(self, key: str, partition: int) -> KeyRecord | None:
        """A key's record as this worker last applied it (stored or not yet)."""
        live = self._live_state(partition)
        if live is not None:
            return live.get_key(key)
        state = self.tables.keys.get(key)
        return None if state is None else KeyRecord.from_state(state)

    def closed(self, key: str, partition: int, window: str, start_ms: int) -> dict[str, Any] | None:
        """A closed window's final result, while it is retained."""
        live = self._live_state(partition)
        if live is not None:
            return live.get_closed(key, window, start_ms)
        result: dict[str, Any] | None = self.tables.closed.get(closed_key(key, window, start_ms))
        return result

    def partition_watermark(self, partition: int) -> int | None:
        """The running processor's watermark, or the stored one."""
        watermark = self._running_watermark(partition)
        if watermark is not None:
            return watermark
        progress = self.tables.partition_state(partition).get_progress()
        return (
            None
            if progress is None
            else watermark_of(progress.max_event_ms, self.config.lateness_ms)
        )

    def keys_page(
        self, partitions: Iterable[int], after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` keys of ``partitions`` after ``after`` (from the first, for
        None), and the key to continue after (None after the last). In the order the
        stores keep them, the bytes of their JSON text: Unicode order, except that a
        key's end sorts after a space or ``!`` (``"a b"`` before ``"a"``) and escaped
        characters (``"``, ``\\``, control characters) sort as ``\\``. Each partition
        reads at most ``limit + 1`` keys: the cost of a page does not grow with the keys."""
        found: list[tuple[bytes, str]] = []
        for partition in partitions:
            state = self._live_state(partition) or self.tables.partition_state(partition)
            found += state.keys_after(after, limit + 1)
        found.sort()
        page = [key for _, key in found[:limit]]
        return page, page[-1] if len(found) > limit else None

    def open_window(self, key: str, partition: int, window: PanedKind, start_ms: int) -> Agg | None:
        """A key's open window, as this worker last applied it (stored or not yet):
        merged from its panes, on read."""
        live = self._live_state(partition)
        aggs = []
        for pane in window.panes(start_ms):
            if live is not None:
                record = live.get_window(window.name, pane, key)
            else:
                state = self.tables.windows.get(window_key(window.name, pane, key))
                record = None if state is None else OpenWindow.from_state(state)
            if record is not None:
                aggs.append(record.agg)
        return Agg.merged(aggs) if aggs else None

    def windows(
        self, key: str, partition: int, windows: Sequence[WindowKind], start: int, end: int
    ) -> list[dict[str, Any]]:
        """The key's windows of ``windows`` starting in [start, end), by window and start:
        closed ones while they are retained, the others (merged from their panes) up to
        the newest event."""
        watermark = self.partition_watermark(partition)
        newest = None if watermark is None else watermark + self.config.lateness_ms
        state = self._live_state(partition) or self.tables.partition_state(partition)
        results: list[tuple[str, int, WindowResult | dict[str, Any]]] = []
        for window in windows:
            if isinstance(window, Sessions):
                results += self._sessions(key, partition, window, start, end)
                continue
            assert isinstance(window, PanedKind), "a window is paned or sessions"
            # By how far its closing went, not by the watermark: a window the watermark
            # has passed is whole in its panes until its closing step comes.
            progress = state.closing_progress(window.name)
            for s in window.starts_between(start, end):
                # Closed first: after a crash, a window may have closed (and its first
                # panes gone) at a watermark newer than the one stored.
                found: WindowResult | dict[str, Any] | None = self.closed(
                    key, partition, window.name, s
                )
                if (
                    found is None
                    and newest is not None
                    and s <= newest
                    and not progress.covers(s, key)  # only asked when nothing closed is found
                ):
                    agg = self.open_window(key, partition, window, s)
                    if agg is not None:
                        found = self.config.result(key, window, s, window.end(s), agg, False)
                if found is not None:
                    results.append((window.name, s, found))
        results.sort(key=lambda found: (found[0], found[1]))
        return [r.as_json() if isinstance(r, WindowResult) else r for _, _, r in results]

    def _sessions(
        self, key: str, partition: int, window: Sessions, start: int, end: int
    ) -> list[tuple[str, int, WindowResult | dict[str, Any]]]:
        """The key's sessions starting in [start, end): the closed ones retained, then
        the open ones its record lists (a session closed just before a crash may still
        be listed: its closed result is taken)."""
        state = self._live_state(partition) or self.tables.partition_state(partition)
        found: dict[int, WindowResult | dict[str, Any]] = {}
        for result in state.closed_of(key, window.name):
            if start <= result["start_ms"] < end:
                found[result["start_ms"]] = result
        record = state.get_key(key)
        for first, last in [] if record is None else record.sessions.get(window.name, []):
            stored = state.get_window(window.name, window.end(last), key)
            if start <= first < end and first not in found and stored is not None:
                found[first] = self.config.result(
                    key, window, first, window.end(last), stored.agg, False
                )
        return [(window.name, first, result) for first, result in found.items()]
