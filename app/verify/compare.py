"""``kappa verify``'s comparison: the batch answer against what the version holds.

Pure: no I/O. Three things are compared:

- **keys**: each key's totals (count and every value metric) from the API, against the
  batch answer over the key's events up to the last one the version applied (its
  ``last_offset``), so records that arrive during the run do not count as differences;
- **windows**: each key's windows from the API (open ones, and closed ones still
  retained), contents as of that same offset, and the ``final`` flag;
- **results**: the final results in the window-results topic, against every window the
  batch closes.

What a moving watermark makes uncertain is not compared: the version's watermark of a
partition is known to lie between what its status said before the API was asked and
after. A window is required to be final (or expired, gone from the API) only when the
first watermark says so and the partition had closed every window that watermark passed
(they close in steps), and required to be open (or retained) only when the second
watermark does; in between it is skipped, and counted as such. A key the version has not reached
yet (all its records after the last processed offset) is pending, not missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agents.spec import PipelineSpec
from app.verify.actual import Actual, WorkerView
from app.verify.batch import BatchAnswer
from tables.windows import Sessions

Kind = Literal["different", "missing", "extra"]
Where = Literal["totals", "windows", "results topic", "watermark"]


@dataclass(frozen=True)
class Difference:
    kind: Kind
    where: Where
    key: str | None
    window: str | None = None
    start_ms: int | None = None
    field: str | None = None
    expected: Any = None
    actual: Any = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "key": self.key,
            "window": self.window,
            "start_ms": self.start_ms,
            "field": self.field,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass
class Tally:
    """How many of one kind of thing were compared, and how they came out."""

    compared: int = 0
    equal: int = 0
    different: int = 0
    missing: int = 0
    extra: int = 0
    skipped: int = 0  # uncertain while the version moves, or not reached yet

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)

    def compared_with(self, found: list[Difference], differences: list[Difference]) -> None:
        """One thing compared: equal, or different with ``found`` kept."""
        self.compared += 1
        if found:
            self.different += 1
            differences.extend(found)
        else:
            self.equal += 1


@dataclass
class Comparison:
    keys: Tally = field(default_factory=Tally)
    windows: Tally = field(default_factory=Tally)
    results: Tally = field(default_factory=Tally)
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """``{"count": 3, "values": {"a": {"sum": 1.0}}}`` -> ``{"count": 3, "values.a.sum": 1.0}``."""
    flat = {"count": result["count"]} if "count" in result else {}
    for name, metrics in result.get("values", {}).items():
        for metric, value in metrics.items():
            flat[f"values.{name}.{metric}"] = value
    return flat


def _field_differences(
    expected: dict[str, Any], actual: dict[str, Any], base: Difference
) -> list[Difference]:
    out = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        # == on floats: the sums are correctly rounded on both sides, so equal exactly.
        if want != got or name not in expected or name not in actual:
            out.append(_with(base, field=name, expected=want, actual=got))
    return out


def _with(base: Difference, **changes: Any) -> Difference:
    return Difference(**{**base.__dict__, **changes})


def _result_of(body: dict[str, Any]) -> dict[str, Any]:
    """The metrics of an API or topic result, without its key and window fields."""
    return flatten({k: v for k, v in body.items() if k in ("count", "values")})


def _result_differences(
    expected: dict[str, Any], fields: dict[str, Any], body: dict[str, Any], base: Difference
) -> list[Difference]:
    """How a window's ``body`` differs from its ``expected`` result and ``fields``
    (``end_ms``, ``final``). Equal, the usual case, costs a few dict comparisons."""
    if (
        body.get("count") == expected.get("count")
        and body.get("values") == expected.get("values")
        and all(body.get(name) == value for name, value in fields.items())
    ):
        return []
    want = flatten(expected) | fields
    got = _result_of(body) | {name: body.get(name) for name in fields}
    return _field_differences(want, got, base)


def compare(
    spec: PipelineSpec,
    answer: BatchAnswer,
    actual: Actual,
    before: WorkerView,
    after: WorkerView,
    live_ends: dict[int, int],
    asked: tuple[int, int],
) -> Comparison:
    """``live_ends``: the input offsets the batch answer read up to, per partition;
    ``asked``: the window starts the API was asked for (later records can add windows
    past it, which are skipped)."""
    out = Comparison()
    _compare_keys(answer, actual, before, out)
    _compare_windows(spec, answer, actual, before, after, asked, out)
    _compare_results(answer, actual, before, out)
    _compare_watermarks(answer, before, after, live_ends, out)
    return out


def _reached(seq: int, partition: int, view: WorkerView) -> bool:
    """Whether the version had processed the record at ``seq`` of ``partition``. History
    records (negative seq) come first: done once the live input has begun."""
    processed = view.processed.get(partition, -1)
    return processed >= 0 if seq < 0 else seq <= processed


def _compare_keys(answer: BatchAnswer, actual: Actual, before: WorkerView, out: Comparison) -> None:
    tally = out.keys
    for key in sorted(answer.totals.keys() | actual.totals.keys()):
        if key not in answer.totals:
            tally.extra += 1
            out.differences.append(
                Difference("extra", "totals", key, actual=flatten(actual.totals[key]))
            )
            continue
        expected = flatten(answer.totals[key])
        if key not in actual.totals:
            if _reached(answer.first_seq[key], answer.key_partition[key], before):
                tally.missing += 1
                out.differences.append(Difference("missing", "totals", key, expected=expected))
            else:
                tally.skipped += 1
            continue
        tally.compared_with(
            _field_differences(
                expected, flatten(actual.totals[key]), Difference("different", "totals", key)
            ),
            out.differences,
        )


def _bracket(view: WorkerView, partition: int) -> int | None:
    return view.watermarks.get(partition)


def _closed_bracket(view: WorkerView, partition: int) -> int | None:
    """The watermark every window ending before it had closed (and expired, past the
    retention) at: the partition's, once it closed all its watermark passed."""
    return view.watermarks.get(partition) if partition in view.done_closing else None


def _at_least(watermark: int | None, instant: int) -> bool:
    return watermark is not None and watermark >= instant


def _compare_windows(
    spec: PipelineSpec,
    answer: BatchAnswer,
    actual: Actual,
    before: WorkerView,
    after: WorkerView,
    asked: tuple[int, int],
    out: Comparison,
) -> None:
    tally = out.windows
    retention = spec.retention_ms
    keys = answer.totals.keys() & actual.totals.keys()
    expected_ids = {w for w, x in answer.windows.items() if w[0] in keys and x.as_of_fence}
    actual_ids = {w for w in actual.windows if w[0] in keys}
    sessions = {w.name for w in spec.windows if isinstance(w, Sessions)}
    for wid in sorted(expected_ids | actual_ids):
        key, window, start = wid
        if key in actual.moving or (window in sessions and key in answer.unsettled_sessions):
            tally.skipped += 1
            continue
        base = Difference("different", "windows", key, window, start)
        body = actual.windows.get(wid)
        expected = answer.windows.get(wid)
        if expected is None or expected.as_of_fence is None:
            assert body is not None
            tally.extra += 1
            out.differences.append(_with(base, kind="extra", actual=_result_of(body)))
            continue
        if not asked[0] <= start < asked[1]:
            tally.skipped += 1
            continue
        p = expected.partition
        low, high = _closed_bracket(before, p), _bracket(after, p)
        gone_for_sure = _at_least(low, expected.end_ms + retention)
        kept_for_sure = not _at_least(high, expected.end_ms + retention)
        if body is None:
            if kept_for_sure:
                tally.missing += 1
                out.differences.append(
                    _with(base, kind="missing", expected=flatten(expected.as_of_fence))
                )
            else:
                tally.skipped += 1
            continue
        if gone_for_sure:
            tally.extra += 1
            out.differences.append(
                _with(base, kind="extra", field="expired", actual=_result_of(body))
            )
            continue
        bounds: dict[str, Any] = {"end_ms": expected.end_ms}
        if _at_least(low, expected.end_ms):
            bounds["final"] = True
        elif not _at_least(high, expected.end_ms):
            bounds["final"] = False
        tally.compared_with(
            _result_differences(expected.as_of_fence, bounds, body, base), out.differences
        )


def _compare_results(
    answer: BatchAnswer, actual: Actual, before: WorkerView, out: Comparison
) -> None:
    tally = out.results
    closed = {w: x for w, x in answer.windows.items() if x.end_ms <= answer.watermarks[x.partition]}
    for wid in sorted(closed.keys() | actual.finals.keys()):
        key, window, start = wid
        base = Difference("different", "results topic", key, window, start)
        body = actual.finals.get(wid)
        expected = closed.get(wid)
        if expected is None:
            assert body is not None
            tally.extra += 1
            out.differences.append(_with(base, kind="extra", actual=_result_of(body)))
            continue
        if body is None:
            if _at_least(_closed_bracket(before, expected.partition), expected.end_ms):
                tally.missing += 1
                out.differences.append(
                    _with(base, kind="missing", expected=flatten(expected.result))
                )
            else:
                tally.skipped += 1
            continue
        bounds = {"end_ms": expected.end_ms, "final": True}
        tally.compared_with(
            _result_differences(expected.result, bounds, body, base), out.differences
        )


def _compare_watermarks(
    answer: BatchAnswer,
    before: WorkerView,
    after: WorkerView,
    live_ends: dict[int, int],
    out: Comparison,
) -> None:
    """A partition the version had processed up to where the batch answer read it, both
    before and after the API was asked, has the watermark of every event read."""
    for p, expected in sorted(answer.watermarks.items()):
        end = live_ends.get(p, 0) - 1
        if before.processed.get(p) == after.processed.get(p) == end >= 0:
            got = after.watermarks.get(p)
            if got != expected:
                out.differences.append(
                    Difference(
                        "different",
                        "watermark",
                        None,
                        field=f"partition {p}",
                        expected=expected,
                        actual=got,
                    )
                )
