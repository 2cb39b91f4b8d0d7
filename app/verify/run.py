"""``kappa verify``: the invariant as a tool. A version's tables and results, against
an independent batch answer over the events it consumes.

``verify(settings, spec, version)`` runs it and returns a ``VerifyReport`` (``.ok``,
``.summary()``, ``.as_json()``); ``kappa verify`` and ``kappa promote --verify`` print
it. The steps, in this order because the version may still move while it runs:

1. find the version's workers (its consumer group's members) and its seam, if any;
2. read its input up to the end offsets of the moment (progress, ETA);
3. ask its workers' status (watermarks, processed offsets), then every key's totals and
   windows through the API, then their status again;
4. read its window-results topic;
5. read what arrived in the input meanwhile, so that every record the version applied
   is in the batch answer, and (with an ``idle_timeout``) the idle advances it made
   (``app.verify.idle``), and compute that answer (``app.verify.batch``) with each
   key as of the last record the version applied to it;
6. compare (``app.verify.compare``).

A version still catching up is compared on what it has processed, and the report says
so: it is complete only when the version had processed every record that was in its
input when verify started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow.compute as pc
from aiokafka.errors import KafkaError

from agents.errors import KappaError
from agents.names import PipelineNames
from agents.partition_columns import partitions_of
from agents.seam_record import SeamRecord
from agents.spec import PipelineSpec
from app.exit_codes import ExitCode
from app.kafka_client import client_options, offset_ranges
from app.replay.seam import read_seam
from app.settings import KappaSettings
from app.verify.actual import WorkerApi, WorkerView, read_actual, read_finals, time_ranges
from app.verify.batch import WindowId, batch_answer, connect
from app.verify.compare import Comparison, Difference, compare
from app.verify.idle import InputAdvance, idle_advances, on_inputs
from app.verify.reading import (
    InputRead,
    InputReader,
    OnProgress,
    history_base,
    quiet,
    read_topic,
)
from app.verify.workers import version_workers
from app.versions.names import changelog_topic
from tables.times import ms_to_iso
from tables.windows import DAY_MS

SHOWN = 10  # differences shown in the summary; --json has them all


@dataclass
class VerifyReport:
    pipeline: str
    version: int
    workers: list[str]
    seam: SeamRecord | None
    read: InputRead
    events: int
    late_events: int
    comparison: Comparison
    lag: dict[int, int] = field(default_factory=dict)  # records behind the start's end
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step after the read
    idle_advances: int = 0
    idle_late_events: int = 0
    # Windows an idle advance closed before some of their events came: compared as the
    # worker closed them, and listed apart, since the event-time answer differs there.
    idle_closed: list[WindowId] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No difference found."""
        return self.comparison.ok

    @property
    def complete(self) -> bool:
        """The version had processed everything its input held when verify started."""
        return not any(self.lag.values()) and not self.comparison.keys.skipped

    @property
    def exit_code(self) -> ExitCode:
        if not self.ok:
            return ExitCode.DIFFERENT
        return ExitCode.OK if self.complete else ExitCode.PARTIAL

    def as_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "pipeline": self.pipeline,
            "version": self.version,
            "ok": self.ok,
            "complete": self.complete,
            "workers": self.workers,
            "seam": None
            if self.seam is None
            else {
                "cut_ms": self.seam.cut_ms,
                "cut": ms_to_iso(self.seam.cut_ms),
                "history_topic": self.seam.history_topic,
                "end_offsets": {str(p): o for p, o in self.seam.end_offsets.items()},
            },
            "input": {
                "records": self.read.records,
                "history_records": self.read.history_records,
                "bad": self.read.left_out,
                "misrouted": self.read.misrouted,
                "filtered": self.read.filtered,
                "before_cut": self.read.before_cut,
                "events": self.events,
                "late_events": self.late_events,
                "read_up_to": {str(p): o for p, o in sorted(self.read.live_ends.items())},
                "seconds": round(self.read.seconds, 3),
            },
            "idle": {
                "advances": self.idle_advances,
                "late_events": self.idle_late_events,
                "windows_closed_early": [
                    {"key": k, "window": w, "start_ms": s, "start": ms_to_iso(s)}
                    for k, w, s in self.idle_closed
                ],
            },
            "lag": {str(p): n for p, n in sorted(self.lag.items())},
            "keys": c.keys.as_json(),
            "windows": c.windows.as_json(),
            "results": c.results.as_json(),
            "differences": [d.as_json() for d in c.differences],
            "seconds": round(self.seconds, 3),
            "phases_s": self.phases,
        }

    def summary(self, shown: int = SHOWN) -> str:
        """A few lines for people: what was read, the tallies, the first differences."""
        read, c = self.read, self.comparison
        left_out = [f"{n:,} {reason}" for reason, n in read.left_out.items()]
        if read.misrouted:
            left_out.append(f"{read.misrouted:,} misrouted")
        if read.filtered:
            left_out.append(f"{read.filtered:,} filtered by the where")
        if read.before_cut:
            left_out.append(f"{read.before_cut:,} live before the cut")
        source = f"{read.records:,} records"
        if self.seam is not None:
            source += (
                f" ({read.history_records:,} from {self.seam.history_topic},"
                f" cut {ms_to_iso(self.seam.cut_ms)})"
            )
        lines = [
            f"verify {self.pipeline} v{self.version}: {len(self.workers)} worker(s);"
            f" read {source} in {read.seconds:.1f} s, {self.events:,} events"
            + (f", left out {', '.join(left_out)}" if left_out else "")
            + f"; {self.late_events:,} late (in totals, not in windows)",
        ]
        header = f"{'':<9}{'compared':>10}{'equal':>10}{'different':>10}{'missing':>10}"
        lines.append(header + f"{'extra':>10}{'skipped':>10}")
        for name, tally in (("keys", c.keys), ("windows", c.windows), ("results", c.results)):
            lines.append(
                f"{name:<9}{tally.compared:>10,}{tally.equal:>10,}{tally.different:>10,}"
                f"{tally.missing:>10,}{tally.extra:>10,}{tally.skipped:>10,}"
            )
        if self.idle_closed:
            examples = ", ".join(
                f"{k!r} {w} at {ms_to_iso(s)}" for k, w, s in self.idle_closed[:shown]
            )
            lines.append(
                f"{len(self.idle_closed):,} window(s) closed by an idle advance before"
                f" {self.idle_late_events:,} of their events came (late, in the late topic):"
                f" compared as the worker closed them; by event time alone they differ: {examples}"
                + (" ..." if len(self.idle_closed) > shown else "")
            )
        behind = sum(self.lag.values())
        if behind:
            lines.append(
                f"the version was {behind:,} records behind its input: compared what it had"
                " processed (each key as of the last record it applied); run verify again"
                " once it has caught up (`kappa status` shows its lag) for a full answer"
            )
        if c.keys.skipped:
            lines.append(f"{c.keys.skipped:,} keys not reached by the version yet: not compared")
        if self.ok:
            verdict = "equal to the batch answer" if self.complete else "equal so far"
            lines.append(f"OK: the version's tables and results are {verdict}")
            return "\n".join(lines)
        first = min(shown, len(c.differences))
        lines.append(f"DIFFERENT: {len(c.differences):,} difference(s); the first {first}:")
        lines.extend(f"  {describe(d)}" for d in c.differences[:shown])
        return "\n".join(lines)


def describe(d: Difference) -> str:
    where: list[str] = [d.where]
    if d.key is not None:
        where.append(f"key {d.key!r}")
    if d.window is not None and d.start_ms is not None:
        where.append(f"window {d.window} at {ms_to_iso(d.start_ms)} ({d.start_ms})")
    if d.field is not None:
        where.append(d.field)
    return f"{d.kind}: {', '.join(where)}: expected {d.expected!r}, actual {d.actual!r}"


async def verify(
    settings: KappaSettings,
    spec: PipelineSpec,
    version: int | None = None,
    on_progress: OnProgress | None = None,
) -> VerifyReport:
    """Compare version ``version`` (default: the spec's) of the pipeline with the batch
    answer. ``spec`` must describe that version's logic (its windows, lateness, ...).

    Raises ``KappaError`` when it cannot compare: an unknown pipeline or version
    (``UnknownVersion``), a version with no running worker (``NoWorkers``), a worker
    that does not answer, Kafka failing, a missing input topic. It changes nothing.
    """
    try:
        return await _verify(settings, spec, version, on_progress or quiet)
    except KafkaError as exc:
        raise KappaError(
            f"Kafka failed: {exc!r}; nothing was compared (verify changes nothing)",
            hint=f"check that Kafka answers at {settings.bootstrap} (`kappa kafka start` starts"
            " the local one; KAPPA_BOOTSTRAP_SERVERS names another), then run verify again",
        ) from exc


async def _verify(
    settings: KappaSettings, spec: PipelineSpec, version: int | None, progress: OnProgress
) -> VerifyReport:
    started = time.monotonic()
    if version is not None and version != spec.version:
        spec = spec.model_copy(update={"version": version})
    names = PipelineNames(spec)
    urls = await version_workers(settings, spec.name, spec.version)
    seam = await read_seam(client_options(settings), names)
    if seam is None and spec.history is not None:
        raise KappaError(
            f"version {spec.version} of {spec.name!r} starts from history files before its"
            f" cut ({spec.history.cut_iso}), and its history is not sealed yet: the version"
            " has applied nothing, so there is nothing to compare",
            hint=f"replay its history first (`kappa replay FILES --pipeline <the spec of"
            f" v{spec.version}>`), then run verify again",
        )
    begins, ends = await _input_offsets(settings, spec)
    reader = InputReader(settings, spec, seam, progress)
    await reader.read_to(ends, begins)
    partitions = len(ends)
    phases = _Phases()
    api = WorkerApi(urls)
    try:
        before = await api.view()
        events = reader.read.table(partitions)
        keys = pc.unique(events["k"].combine_chunks())
        key_partition = dict(
            zip(keys.to_pylist(), partitions_of(keys, partitions).to_pylist(), strict=True)
        )
        ranges = _window_ranges(spec, events)
        actual = await read_actual(
            api, before, key_partition.keys(), key_partition, partitions, ranges, progress
        )
        after = await api.view()
    finally:
        await api.close()
    phases.mark("api")
    progress("reading the window-results topic", 0, None)
    actual.finals = await read_finals(settings, names)
    phases.mark("results_topic")
    _, now = await _input_offsets(settings, spec)
    await reader.read_to(now, begins)
    phases.mark("input_again")
    advances, idle = await _idle_advances(settings, names)
    progress("computing the batch answer (DuckDB)", 0, None)
    answer = batch_answer(connect(), reader.read.table(partitions), spec, actual.fences, idle)
    phases.mark("batch_answer")
    progress("comparing", 0, None)
    asked = (ranges[0][0], ranges[-1][1]) if ranges else (0, 0)
    ends_read = {p: history_base(seam, p) + end for p, end in reader.read.live_ends.items()}
    comparison = compare(
        spec, answer, actual, _virtual(before, seam), _virtual(after, seam), ends_read, asked
    )
    phases.mark("compare")
    progress("done", 0, 0)
    lag = {
        p: max(0, end - 1 - after.processed.get(p, -1))
        for p, end in ends.items()
        if end > begins.get(p, 0)
    }
    return VerifyReport(
        pipeline=spec.name,
        version=spec.version,
        workers=urls,
        seam=seam,
        read=reader.read,
        events=answer.events,
        late_events=answer.late_events,
        comparison=comparison,
        lag=lag,
        seconds=time.monotonic() - started,
        phases=phases.seconds,
        idle_advances=advances,
        idle_late_events=answer.idle_late_events,
        idle_closed=sorted(answer.idle_closed),
    )


async def _idle_advances(
    settings: KappaSettings, names: PipelineNames
) -> tuple[int, list[InputAdvance]]:
    """How many idle advances the version made (from its ``meta`` changelog), and where
    each happened on the input partitions; none without an ``idle_timeout``."""
    spec = names.spec
    if spec.idle_timeout_ms is None:
        return 0, []
    advances = idle_advances(
        await read_topic(settings, changelog_topic(spec.name, spec.version, "meta"))
    )
    hopped = any(a.hop_after >= 0 for a in advances)
    hop_records = await read_topic(settings, names.repartition_topic) if hopped else []
    return len(advances), on_inputs(advances, hop_records)


def _virtual(view: WorkerView, seam: SeamRecord | None) -> WorkerView:
    """``view`` with its processed offsets on the worker's virtual scale (history, then
    live: agents/history_seam.py), the scale of the keys' fences. Status reports live
    offsets only, -1 while a partition is still in its history: then no record counts as
    reached, so a key not there yet is skipped rather than missing."""
    if seam is None:
        return view
    processed = {
        p: (history_base(seam, p) + offset if offset >= 0 else -1)
        for p, offset in view.processed.items()
    }
    return replace(view, processed=processed)


class _Phases:
    """Seconds each step after the first read took, for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now


async def _input_offsets(
    settings: KappaSettings, spec: PipelineSpec
) -> tuple[dict[int, int], dict[int, int]]:
    """The input topic's first and next offset per partition."""
    ranges = await offset_ranges(client_options(settings), [spec.input_topic])
    if spec.input_topic not in ranges:
        raise KappaError(
            f"the input topic {spec.input_topic!r} does not exist on {settings.bootstrap}",
            hint="check input_topic in the pipeline spec and KAPPA_BOOTSTRAP_SERVERS",
        )
    by_partition = ranges[spec.input_topic]
    return (
        {p: first for p, (first, _) in by_partition.items()},
        {p: end for p, (_, end) in by_partition.items()},
    )


def _window_ranges(spec: PipelineSpec, events: Any) -> list[tuple[int, int]]:
    """Where the API is asked for windows: every start a window of the events read can
    have, in pieces the API answers."""
    if not spec.windows or not len(events):
        return []
    # A session starts at one of its events; other windows up to a size before one.
    windows = spec.paned_windows
    largest = max((w.size_ms for w in windows), default=0)
    low = pc.min(events["t"]).as_py() - largest - DAY_MS  # a zoned day can be 25 hours
    high = pc.max(events["t"]).as_py() + 1
    if not windows:
        return [(low, high)]  # the API lists any number of a key's sessions at once
    return time_ranges(low, high, min(w.step_ms for w in windows))
