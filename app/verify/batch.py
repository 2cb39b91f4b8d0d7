"""``kappa verify``'s batch answer: DuckDB SQL over the events a version consumes.

The events come in as one Arrow table (``event_schema``): the partition, the order
within it (``seq``: a live record's offset; history records, read first, negative), the
key, the event time and the value fields (``v0``, ``v1``, ...). Decoding the records with
the pipeline's ``EventParser`` is the only code shared with the worker; everything after
it is SQL written from the rules in docs/pipelines.md:

- late: an event is late when its time is behind its partition's watermark at its
  arrival, the newest event time seen before it (in ``seq`` order) minus the lateness:
  a window function over the partition; with an ``idle_timeout``, the clock is also at
  least that of every idle advance the partition made before the event
  (``app.verify.idle``), and the windows that an event late only by an advance would
  have been in are kept apart (``idle_closed``);
- windows: each window kind's own SQL (``WindowKind.assign_sql``), e.g.
  ``[k*step, k*step + size)`` aligned to the epoch, or local days of the pipeline's
  time zone (DuckDB's ICU) for windows of whole days, or a key's sessions (``lag()``:
  a new one where an event is more than the gap after the previous one); late events
  are kept out of them, and count in the totals;
- each partition's watermark and each window's end, from which ``app.verify.compare``
  decides which windows are final (the watermark reached the end) and which have left
  the tables (it passed the end plus the retention).

Sums are exact. DuckDB's ``sum`` over DOUBLE is a running sum and its ``fsum`` (Kahan)
is not correctly rounded either (2**53 + 1.0 + 2**-60 gives 2**53 with both; the exact
sum rounds to 2**53 + 2), and DECIMAL holds 38 digits, where a double can need hundreds.
So SQL groups each key's or window's non-null values into a list (``list(v)``), and the
sum is ``math.fsum`` of that list: the correctly rounded sum (Shewchuk's algorithm, in
C), as tests/support/oracle.py does. The mean is that sum divided by the non-null count,
as docs/pipelines.md defines it. (A DuckDB scalar function would run the same fsum
inside the SQL, but Python functions need numpy, which kappa does not install.)

Totals and window contents can be asked "as of" a fence per key (the offset of the last
record the version applied for that key, from its query API), so that a version that is
still reading, or live traffic during the run, compares what the version had seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from agents.spec import PipelineSpec
from app.verify.bounds import bounded_distinct, within
from app.verify.idle import InputAdvance, advances_table
from tables.quantiles import QUANTILES
from tables.windows import WindowKind
from tables.windows.calendar import SQL_MACROS

WindowId = tuple[str, str, int]  # key, window name, start ms


def event_schema(values: int) -> pa.Schema:
    return pa.schema(
        [
            ("p", pa.int32()),
            ("seq", pa.int64()),
            ("k", pa.string()),
            ("t", pa.int64()),
            *[(f"v{i}", pa.float64()) for i in range(values)],
        ]
    )


@dataclass(frozen=True)
class ExpectedWindow:
    partition: int
    end_ms: int
    result: dict[str, Any]  # over every event read
    as_of_fence: dict[str, Any] | None  # over the key's events up to its fence; None: none


@dataclass
class BatchAnswer:
    totals: dict[str, dict[str, Any]]  # key -> result, as of the key's fence
    windows: dict[WindowId, ExpectedWindow]
    watermarks: dict[int, int]  # partition -> watermark after every event read
    key_partition: dict[str, int]
    first_seq: dict[str, int]  # key -> its first record's seq
    # Keys with events past their fence: their sessions as of the fence are not known
    # (an unseen event may have merged two), so they are not compared.
    unsettled_sessions: set[str] = field(default_factory=set)
    late_events: int = 0
    events: int = 0
    # Windows an idle advance closed before some of their events came (late only by
    # it): the event-time answer differs there, the worker's does not.
    idle_closed: set[WindowId] = field(default_factory=set)
    idle_late_events: int = 0


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for macro in SQL_MACROS:
        con.execute(macro)
    return con


# Per value field, the SQL of each metric that needs more than its min, max and values:
# first and last by (event time, seq), the input order of docs/pipelines.md (a key's
# events are all on one partition); count(DISTINCT), where -0.0 is 0.0 as in kappa;
# the quantiles exactly (quantile_disc: the value of rank ceil(q * n)), which kappa's
# sketch must match within its bound (app/verify/bounds.py).
_EXTRA_SQL = {
    "first": "arg_min({v}, [t, seq]) FILTER (WHERE {keep})",
    "last": "arg_max({v}, [t, seq]) FILTER (WHERE {keep})",
    "count_distinct": "count(DISTINCT {v}) FILTER (WHERE {keep})",
    **{
        metric: f"quantile_disc({{v}}, {percent / 100}) FILTER (WHERE {{keep}})"
        for metric, percent in QUANTILES.items()
    },
}


def _extras(metrics: Sequence[str]) -> list[str]:
    """The metrics of ``_EXTRA_SQL`` that ``metrics`` ask for, in its order."""
    return [metric for metric in _EXTRA_SQL if metric in metrics]


def _metric_columns(values: int, where: str, prefix: str, extras: Sequence[str]) -> str:
    """count(*) and, per value field, its non-null count, its non-null values as a list
    (for the exact sum), its min and max, then its ``extras`` (``_EXTRA_SQL``), over the
    rows that satisfy ``where``."""
    cols = [f"count(*) FILTER (WHERE {where}) AS {prefix}n"]
    for i in range(values):
        v = f"v{i}"
        keep = f"{v} IS NOT NULL AND {where}"
        cols += [
            f"count({v}) FILTER (WHERE {where}) AS {prefix}n{i}",
            f"list({v}) FILTER (WHERE {keep}) AS {prefix}s{i}",
            f"min({v}) FILTER (WHERE {where}) AS {prefix}lo{i}",
            f"max({v}) FILTER (WHERE {where}) AS {prefix}hi{i}",
            *(_EXTRA_SQL[m].format(v=v, keep=keep) for m in extras),
        ]
    return ", ".join(cols)


def _assign(window: WindowKind, values: int) -> str:
    """SQL: every on-time event once per window instance of ``window`` holding it."""
    return window.assign_sql(
        ", ".join(["m.p", "m.k", "m.seen", "m.t", "m.seq", *[f"m.v{i}" for i in range(values)]])
    )


def shape(row: Sequence[Any], value_names: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    """A result as kappa shows it (``{"count": .., "values": {field: {metric: ..}}}``)
    from SQL's ``count, (n, values, min, max, extras...) per field``, with only the
    wanted metrics.

    The sum is ``math.fsum`` of the values DuckDB grouped (correctly rounded), the mean
    that sum over the non-null count."""
    out: dict[str, Any] = {"count": row[0]} if "count" in metrics else {}
    wanted = [m for m in metrics if m != "count"]
    if wanted:
        fields = {}
        extras = _extras(metrics)
        width = 4 + len(extras)
        for i, name in enumerate(value_names):
            n, values, low, high, *more = row[1 + width * i : 1 + width * (i + 1)]
            total = math.fsum(values) if n else None
            found = {
                "sum": total,
                "min": low,
                "max": high,
                "mean": None if total is None else total / n,
                **{
                    metric: _expected(metric, value, len(value_names))
                    for metric, value in zip(extras, more, strict=True)
                },
            }
            fields[name] = {metric: found[metric] for metric in wanted}
        out["values"] = fields
    return out


def _apply_idle(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    idle: Sequence[InputAdvance],
    answer: BatchAnswer,
) -> None:
    """Mark late the events behind an earlier idle advance's watermark, keep the windows
    they would have been in (by event time alone) in ``idle_closed``, and move each
    partition's watermark to its last advance's, where that is ahead."""
    con.register("idle_in", advances_table(idle))
    con.execute(
        f"""ALTER TABLE marked ADD COLUMN by_idle BOOLEAN;
            UPDATE marked SET by_idle = NOT late AND coalesce(
                t < (SELECT max(i.clock) FROM idle_in i
                     WHERE i.p = marked.p AND i.after_seq < marked.seq) - {spec.lateness_ms},
                false)"""
    )
    (answer.idle_late_events,) = con.execute(
        "SELECT count(*) FILTER (WHERE by_idle) FROM marked"
    ).fetchone() or (0,)
    if spec.windows and answer.idle_late_events:
        n = len(spec.values)
        assigned = " UNION ALL ".join(
            w.assign_sql(", ".join(["m.k", "m.by_idle", *[f"m.v{i}" for i in range(n)]]))
            for w in spec.windows
        )
        rows = con.execute(f"SELECT DISTINCT k, w, s FROM ({assigned}) WHERE by_idle").fetchall()
        answer.idle_closed = {(k, w, s) for k, w, s in rows}
    con.execute("UPDATE marked SET late = true WHERE by_idle")
    for advance in idle:
        p, moved = advance.partition, advance.clock_ms - spec.lateness_ms
        if p in answer.watermarks:
            answer.watermarks[p] = max(answer.watermarks[p], moved)


def _expected(metric: str, value: Any, n_values: int) -> Any:
    """An extra metric's exact value as kappa must show it: a quantile within its sketch's
    bound, a ``count_distinct`` null over its bound."""
    if metric in QUANTILES:
        return within(value)
    if metric == "count_distinct":
        return bounded_distinct(value, n_values)
    return value


def batch_answer(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table,
    spec: PipelineSpec,
    fences: dict[str, dict[int, int]] | None = None,
    idle: Sequence[InputAdvance] = (),
) -> BatchAnswer:
    """The batch answer over ``events`` (``event_schema``) for ``spec``; with ``fences``,
    totals and ``as_of_fence`` contents count only each fenced key's events up to its
    fence for their input partition (``seq <= fence[p]``; none from a partition the key
    has no fence for). Through the repartition hop a key's events come from several
    input partitions, whose offsets are unrelated. ``idle``: the version's idle advances,
    applied where they happened on each input partition."""
    n = len(spec.values)
    extras = _extras(spec.metrics)
    by_source = [(k, p, o) for k, fence in (fences or {}).items() for p, o in fence.items()]
    fence_table = pa.table(
        {
            "k": pa.array([k for k, _, _ in by_source], pa.string()),
            "p": pa.array([p for _, p, _ in by_source], pa.int32()),
            "fence": pa.array([o for _, _, o in by_source], pa.int64()),
        }
    )
    fenced_keys = pa.table({"k": pa.array(list(fences or {}), pa.string())})
    con.register("events_in", events)
    con.register("fences_in", fence_table)
    con.register("fenced_in", fenced_keys)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marked AS
        SELECT e.*,
               coalesce(e.t < max(e.t) OVER (PARTITION BY e.p ORDER BY e.seq
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) - {spec.lateness_ms},
                        false) AS late,
               fk.k IS NULL OR e.seq <= coalesce(f.fence, -1) AS seen
        FROM events_in e LEFT JOIN fences_in f USING (k, p)
             LEFT JOIN fenced_in fk ON fk.k = e.k
        """
    )
    answer = BatchAnswer({}, {}, {}, {}, {})
    for p, watermark in con.execute(
        f"SELECT p, max(t) - {spec.lateness_ms} FROM marked GROUP BY p"
    ).fetchall():
        answer.watermarks[p] = watermark
    if idle:
        _apply_idle(con, spec, idle, answer)
    answer.events, answer.late_events = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE late) FROM marked"
    ).fetchone() or (0, 0)
    rows = con.execute(
        f"""
        SELECT k, any_value(p) AS p, min(seq) AS mn, {_metric_columns(n, "seen", "a", extras)}
        FROM marked GROUP BY k
        """
    ).fetchall()
    for key, p, first, *metrics in rows:
        answer.key_partition[key] = p
        answer.first_seq[key] = first
        answer.totals[key] = shape(metrics, spec.values, spec.metrics)
    if not spec.windows:
        return answer
    assigned = " UNION ALL ".join(_assign(w, n) for w in spec.windows)
    # As of the fences differs from all only where a fence leaves events out (records
    # that arrived during the run): computed only then, since it doubles the work.
    (unseen,) = con.execute("SELECT count(*) FROM marked WHERE NOT seen").fetchone() or (0,)
    if unseen and len(spec.paned_windows) != len(spec.windows):
        answer.unsettled_sessions = {
            key for (key,) in con.execute("SELECT DISTINCT k FROM marked WHERE NOT seen").fetchall()
        }
    as_of = f", {_metric_columns(n, 'seen', 'b', extras)}" if unseen else ""
    rows = con.execute(
        f"""
        SELECT k, w, s, any_value(p) AS p, any_value(e) AS e,
               {_metric_columns(n, "true", "a", extras)}{as_of}
        FROM ({assigned}) GROUP BY k, w, s
        """
    ).fetchall()
    width = 1 + (4 + len(extras)) * n
    for key, window, start, p, end, *metrics in rows:
        result = shape(metrics[:width], spec.values, spec.metrics)
        seen = metrics[width:] if unseen else metrics[:width]
        answer.windows[(key, window, start)] = ExpectedWindow(
            partition=p,
            end_ms=end,
            result=result,
            as_of_fence=(
                None
                if not seen[0]
                else result
                if not unseen
                else shape(seen, spec.values, spec.metrics)
            ),
        )
    return answer
