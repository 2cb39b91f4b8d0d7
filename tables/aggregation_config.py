"""What a pipeline computes, as its state sees it: the values, metrics and windows, the
lateness and the retention; and how an aggregate becomes a window result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tables import json_bytes
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


class SharedResults:
    """Final results of the windows one closing closes, each aggregate's result built and
    encoded once: the windows of a key that merge the same panes share one aggregate
    (``agents.processor`` merges each set of panes once), so a hopping event's 24 windows
    usually cost one result. Each result's JSON bytes are spliced from the encoded parts
    it shares with others (its key, its window instance, its aggregate's result): the
    very bytes orjson gives for its ``as_json``."""

    def __init__(self, config: AggregationConfig) -> None:
        self.config = config
        # By the aggregate's id, the aggregate kept so that the id stays its own.
        self._by_agg: dict[int, tuple[Agg, dict[str, Any], bytes]] = {}
        self._keys: dict[str, bytes] = {}
        self._instances: dict[tuple[str, int], bytes] = {}

    def final(self, key: str, window: WindowKind, start: int, end: int, agg: Agg) -> WindowResult:
        found = self._by_agg.get(id(agg))
        if found is None:
            config = self.config
            result = agg.result(config.value_names, config.metrics)
            # What follows the head: ',"count":3,"values":{...}}', or '}' for no members.
            encoded = orjson.dumps(result)
            tail = b"," + encoded[1:] if len(encoded) > 2 else b"}"
            found = self._by_agg[id(agg)] = (agg, result, tail)
        _, result, tail = found
        out = WindowResult(key, window.name, start, end, True, result)
        key_json = self._keys.get(key)
        if key_json is None:
            # Copied to its size: orjson returns a small value in a 4 KB buffer, and a
            # closing's keys are held until it ends (tables.json_bytes).
            key_json = self._keys[key] = json_bytes.dumps(key)
        instance = self._instances.get((window.name, start))
        if instance is None:
            # The head's members after the key: '"window":...,"final":true'.
            head = out.head()
            del head["key"]
            instance = self._instances[(window.name, start)] = orjson.dumps(head)[1:-1]
        out.json_bytes = b"".join((b'{"key":', key_json, b",", instance, tail))
        return out
