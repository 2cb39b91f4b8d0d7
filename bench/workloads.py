"""The benchmark's workloads: how many keys the events spread over, and which window.

A workload is written ``keys<N>`` (a 1h tumbling window), ``hopping<N>`` (a 1d window
every 1h: 24 windows per event) or ``wide<N>`` (a 1h tumbling window over wide records:
20 fields with naive ISO times, of which the pipeline reads 4; bench.wide), where ``N``
is the number of keys the generator draws from, with an optional ``k`` or ``m`` suffix:
``keys16``, ``keys100000``, ``hopping1m``, ``wide1000``. ``@<events>`` after it sets the
workload's own number of events (``hopping1m@25k``); without it, the workload has the
run's ``--events``. Every workload keeps per-key totals too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.durations import format_duration

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Window size and step in ms per kind of workload.
KINDS = {"keys": (HOUR_MS, HOUR_MS), "hopping": (DAY_MS, HOUR_MS), "wide": (HOUR_MS, HOUR_MS)}
SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}
_WORKLOAD = re.compile(r"(keys|hopping|wide)([0-9]+)(k|m)?(?:@([0-9]+)(k|m)?)?")
# Each hopping event makes 24 window results, and 25k events make 600k of them: more
# than the 100k-event tumbling workloads make, in a fraction of the run's time.
DEFAULT = "keys1000,keys16,keys100000,hopping1m@25k,wide1000"
SMOKE = "keys16,hopping1m@1k"


@dataclass(frozen=True)
class Workload:
    name: str
    keys: int
    size_ms: int
    step_ms: int
    events: int

    @property
    def wide(self) -> bool:
        """Whether its events are bench.wide's 20-field records (else app.datagen's 4)."""
        return self.name.startswith("wide")

    @property
    def windows_toml(self) -> str:
        """The window in a pipeline spec's ``windows`` list."""
        size, step = format_duration(self.size_ms), format_duration(self.step_ms)
        if size == step:
            return f'{{ size = "{size}" }}'
        return f'{{ size = "{size}", step = "{step}" }}'

    @property
    def description(self) -> str:
        size, step = format_duration(self.size_ms), format_duration(self.step_ms)
        window = f"{size} tumbling" if size == step else f"{size} every {step}"
        records = ", wide records" if self.wide else ""
        return f"{self.events:,} events, {self.keys:,} keys, {window} window{records}"


def parse_workload(text: str, events: int) -> Workload:
    """One workload; ``events`` unless it gives its own."""
    match = _WORKLOAD.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"unknown workload {text!r}: write keys<N> (1h tumbling window), hopping<N> "
            "(1d window every 1h) or wide<N> (1h tumbling, 20-field records) on N keys, "
            "optionally @<events>, e.g. keys16, keys100k, hopping1m@25k, wide1000"
        )
    kind, digits, suffix = match[1], match[2], match[3] or ""
    keys = int(digits) * SUFFIXES[suffix]
    if match[4] is not None:
        events = int(match[4]) * SUFFIXES[match[5] or ""]
    if keys < 1 or events < 1:
        raise ValueError(f"workload {text!r}: keys and events must be at least 1")
    size_ms, step_ms = KINDS[kind]
    return Workload(f"{kind}{digits}{suffix}", keys, size_ms, step_ms, events)


def parse_workloads(text: str, events: int) -> list[Workload]:
    """Comma-separated workloads, in the order given; each at most once. Those that do
    not give their own number of events have ``events``."""
    workloads = [parse_workload(part, events) for part in text.split(",") if part.strip()]
    if not workloads:
        raise ValueError("no workload given: e.g. --workloads keys16,keys1000,hopping1m")
    names = [workload.name for workload in workloads]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"workload(s) {', '.join(repeated)} given twice; list each once")
    return workloads
