"""The benchmark's workloads: how many keys the events spread over, and which window.

A workload is written ``keys<N>`` (a 1h tumbling window), ``hopping<N>`` (a 1d window
every 1h: 24 windows per event), ``wide<N>`` (a 1h tumbling window over wide records:
20 fields with naive ISO times, of which the pipeline reads 4; bench.wide) or
``sessions<N>`` (session windows with a 30-minute gap), where ``N`` is the number of
keys the generator draws from, with an optional ``k`` or ``m`` suffix: ``keys16``,
``keys100000``, ``hopping1m``, ``wide1000``, ``sessions100``. ``@<events>`` after it sets
the workload's own number of events (``hopping1m@25k``); without it, the workload has
the run's ``--events``. Every workload keeps per-key totals too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.durations import format_duration

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Window size and step in ms per kind of workload (a session has neither: its gap).
KINDS = {
    "keys": (HOUR_MS, HOUR_MS),
    "hopping": (DAY_MS, HOUR_MS),
    "wide": (HOUR_MS, HOUR_MS),
    "sessions": (0, 0),
}
# The sessions workload's inactivity gap: on 100 keys over the 14 days, a key has an
# event about every 20 minutes, so its sessions hold a few events each and out-of-order
# events merge some.
SESSION_GAP_MS = 30 * 60_000
SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}
_WORKLOAD = re.compile(r"(keys|hopping|wide|sessions)([0-9]+)(k|m)?(?:@([0-9]+)(k|m)?)?")
# Each hopping event makes 24 window results, and 25k events make 600k of them: more
# than the 100k-event tumbling workloads make, in a fraction of the run's time.
DEFAULT = "keys1000,keys16,keys100000,hopping1m@25k,wide1000"
SMOKE = "keys16,hopping1m@1k,sessions100@1k"


@dataclass(frozen=True)
class Workload:
    name: str
    keys: int
    size_ms: int
    step_ms: int
    events: int
    # The inactivity gap of a sessions workload; 0 for the others.
    gap_ms: int = 0

    @property
    def sessions(self) -> bool:
        """Whether its window is a session window (``gap_ms``), not a fixed one."""
        return self.gap_ms > 0

    @property
    def wide(self) -> bool:
        """Whether its events are bench.wide's 20-field records (else app.datagen's 4)."""
        return self.name.startswith("wide")

    @property
    def windows_toml(self) -> str:
        """The window in a pipeline spec's ``windows`` list."""
        if self.sessions:
            return f'{{ gap = "{format_duration(self.gap_ms)}" }}'
        size, step = format_duration(self.size_ms), format_duration(self.step_ms)
        if size == step:
            return f'{{ size = "{size}" }}'
        return f'{{ size = "{size}", step = "{step}" }}'

    @property
    def description(self) -> str:
        if self.sessions:
            window = f"sessions with a {format_duration(self.gap_ms)} gap"
            return f"{self.events:,} events, {self.keys:,} keys, {window}"
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
            "(1d window every 1h), wide<N> (1h tumbling, 20-field records) or sessions<N> "
            "(sessions with a 30m gap) on N keys, optionally @<events>, e.g. keys16, "
            "keys100k, hopping1m@25k, wide1000, sessions100"
        )
    kind, digits, suffix = match[1], match[2], match[3] or ""
    keys = int(digits) * SUFFIXES[suffix]
    if match[4] is not None:
        events = int(match[4]) * SUFFIXES[match[5] or ""]
    if keys < 1 or events < 1:
        raise ValueError(f"workload {text!r}: keys and events must be at least 1")
    size_ms, step_ms = KINDS[kind]
    gap_ms = SESSION_GAP_MS if kind == "sessions" else 0
    return Workload(f"{kind}{digits}{suffix}", keys, size_ms, step_ms, events, gap_ms)


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
