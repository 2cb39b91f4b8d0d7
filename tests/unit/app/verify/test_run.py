"""``kappa verify``'s report: its exit code and the lines people read."""

from __future__ import annotations

from agents.spec import parse_spec
from app.exit_codes import ExitCode
from app.verify.compare import Comparison, Difference, Tally
from app.verify.reading import InputRead
from app.verify.run import VerifyReport

SPEC = parse_spec(
    {"name": "orders", "version": 2, "input_topic": "in", "key": "k", "time_field": "t"},
    "test",
)


def report(comparison: Comparison, lag: dict[int, int] | None = None) -> VerifyReport:
    read = InputRead(SPEC, records=12, bad={"bad_time": 2})
    return VerifyReport(
        pipeline="orders",
        version=2,
        workers=["http://a"],
        seam=None,
        read=read,
        events=10,
        late_events=1,
        comparison=comparison,
        lag=lag or {0: 0},
    )


def test_equal_and_complete_exits_0() -> None:
    done = report(Comparison(keys=Tally(compared=3, equal=3)))
    assert done.exit_code == ExitCode.OK
    text = done.summary()
    assert "verify orders v2: 1 worker(s); read 12 records" in text
    assert "left out 2 bad_time" in text
    assert "OK: the version's tables and results are equal to the batch answer" in text


def test_a_version_behind_its_input_is_equal_so_far_and_exits_3() -> None:
    done = report(Comparison(keys=Tally(compared=3, equal=3)), lag={0: 5, 1: 2})
    assert done.exit_code == ExitCode.PARTIAL
    assert not done.complete
    text = done.summary()
    assert "the version was 7 records behind its input" in text
    assert "OK: the version's tables and results are equal so far" in text


def test_a_difference_exits_4_and_is_shown() -> None:
    differences = [
        Difference("different", "windows", f"k{i}", "1h", 0, "count", 3, 4) for i in range(12)
    ]
    done = report(Comparison(windows=Tally(compared=12, different=12), differences=differences))
    assert done.exit_code == ExitCode.DIFFERENT
    assert not done.ok
    text = done.summary()
    assert "DIFFERENT: 12 difference(s); the first 10:" in text
    assert (
        "different: windows, key 'k0', window 1h at 1970-01-01T00:00:00Z (0), count:"
        " expected 3, actual 4" in text
    )
    assert "key 'k10'" not in text
    assert len(done.as_json()["differences"]) == 12


def test_windows_an_idle_advance_closed_early_are_listed_apart_and_exit_0() -> None:
    closed = [(f"k{i}", "1h", 3_600_000 * i) for i in range(12)]
    done = report(Comparison(windows=Tally(compared=12, equal=12)))
    done.idle_advances, done.idle_late_events, done.idle_closed = 2, 13, closed
    assert done.ok
    text = done.summary()
    assert (
        "12 window(s) closed by an idle advance before 13 of their events came (late, in"
        " the late topic): compared as the worker closed them; by event time alone they"
        " differ: 'k0' 1h at 1970-01-01T00:00:00Z, 'k1' 1h at 1970-01-01T01:00:00Z" in text
    )
    assert "'k10'" not in text
    assert text.count(" ...") == 1
    assert "OK: the version's tables and results are equal to the batch answer" in text
    idle = done.as_json()["idle"]
    assert (idle["advances"], idle["late_events"]) == (2, 13)
    assert idle["windows_closed_early"][1] == {
        "key": "k1",
        "window": "1h",
        "start_ms": 3_600_000,
        "start": "1970-01-01T01:00:00Z",
    }
    assert done.exit_code == ExitCode.OK
    # A real difference beside them still exits 5.
    done.comparison.differences.append(
        Difference("different", "totals", "x", None, None, "count", 1, 2)
    )
    assert not done.ok
