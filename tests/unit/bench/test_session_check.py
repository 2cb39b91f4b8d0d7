"""The sessions workload's cross-check (bench.session_check): DuckDB's sessions are a
plain Python fold's, and the check passes equal engines and names a differing one."""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from agents.partitions import expected_partition
from app.datagen import DatasetShape, generate, write
from bench.session_check import Session, Sessions, check, expected, quix_closes_before, sample
from bench.workloads import parse_workload

(WORKLOAD,) = [parse_workload("sessions3", 600)]
GAP = WORKLOAD.gap_ms


def _fold(path: Path) -> Sessions:
    """Each key's events in time order; a new session where one is more than the gap
    after the one before."""
    events: dict[str, list[tuple[int, float, float]]] = {}
    with gzip.open(path, "rt", newline="") as rows:
        for row in csv.DictReader(rows):
            ts = int(datetime.fromisoformat(row["ts"]).timestamp() * 1000)
            amount, quantity = (float(row[f]) if row[f] else 0.0 for f in ("amount", "quantity"))
            events.setdefault(row["customer_id"], []).append((ts, amount, quantity))
    folded: Sessions = {}
    for key, rows_ in events.items():
        runs: list[list[tuple[int, float, float]]] = []
        for event in sorted(rows_):
            if runs and event[0] - runs[-1][-1][0] <= GAP:
                runs[-1].append(event)
            else:
                runs.append([event])
        folded[key] = [
            Session(
                run[0][0],
                run[-1][0],
                len(run),
                (math.fsum(e[1] for e in run), math.fsum(e[2] for e in run)),
            )
            for run in runs
        ]
    return folded


def test_duckdbs_sessions_are_a_python_folds(tmp_path: Path) -> None:
    # 600 events on 3 keys over 3,000 minutes: a key's events are about 15 minutes
    # apart, and up to 5 minutes out of order in the file, so sessions hold several.
    shape = DatasetShape(events=600, keys=3, span_ms=3_000 * 60_000, seed=5)
    path = tmp_path / "events.csv.gz"
    write(generate(shape), path)
    got, want = expected(path, WORKLOAD), _fold(path)
    assert sorted(got) == sorted(want)
    for key in want:
        assert len(got[key]) == len(want[key]), key
        assert all(g.same(w) for g, w in zip(got[key], want[key], strict=True)), key
    assert sum(map(len, want.values())) < 600 - 100  # many sessions hold several events
    assert sample(got) == sorted(got)


def _sessions() -> Sessions:
    day = 86_400_000
    return {
        f"k{i}": [
            Session(0, 10, 2, (1.5, 2.0)),
            Session(GAP + 11, GAP + 20, 3, (0.1, 3.0)),
            Session(10 * day, 10 * day, 1, (1.0, 1.0)),  # the newest: not closed in Quix
        ]
        for i in range(3)
    }


def test_equal_engines_pass_with_the_figures_checked() -> None:
    want = _sessions()
    quix = {key: sessions[:2] for key, sessions in want.items()}
    # Added in another order: a sum within 1e-9 of DuckDB's is the same sum.
    kappa = {
        k: [replace(s, sums=(s.sums[0] * (1 + 1e-15), s.sums[1])) for s in v]
        for k, v in want.items()
    }
    assert check(WORKLOAD, want, kappa, quix, partitions=4) == {
        "sessions_kappa_checked": 9,
        "sessions_quix_checked": 6,
        "sessions_total": 9,
    }


@pytest.mark.parametrize(
    ("engine", "change", "error"),
    [
        ("kappa", lambda s: s[1:], "kappa, key k0: 2 sessions, DuckDB 3"),
        ("kappa", lambda s: [replace(s[0], count=3), *s[1:]], "kappa, key k0"),
        ("kappa", lambda s: [replace(s[0], sums=(1.5001, 2.0)), *s[1:]], "kappa, key k0"),
        (
            "quix",
            lambda s: [Session(0, 5, 1, (1.5, 0)), Session(6, 10, 1, (0, 2.0)), s[1]],
            "Quix, key k0: 3 sessions, DuckDB 2",
        ),
        ("quix", lambda s: [s[0]], "Quix, key k0: 1 sessions, DuckDB 2"),
    ],
)
def test_a_differing_engine_is_named(
    engine: str, change: Callable[[list[Session]], list[Session]], error: str
) -> None:
    want = _sessions()
    kappa = dict(want)
    quix = {key: sessions[:2] for key, sessions in want.items()}
    target = kappa if engine == "kappa" else quix
    target["k0"] = change(target["k0"])
    with pytest.raises(RuntimeError, match=error):
        check(WORKLOAD, want, kappa, quix, partitions=4)


def test_quix_is_held_to_the_sessions_its_own_partition_has_closed() -> None:
    # Two keys on different partitions: one partition's newest event is a day in, the
    # other's ten days in. Quix closes a session when its partition's event time passes
    # its last event plus two gaps and the grace (70 minutes).
    day = 86_400_000
    early, late = (
        "c00000",
        next(
            k
            for k in (f"c{i:05d}" for i in range(1, 100))
            if expected_partition(k, 2) != expected_partition("c00000", 2)
        ),
    )
    want = {
        early: [Session(0, 0, 1, (1.0, 1.0)), Session(day - 3_600_000, day, 2, (2.0, 2.0))],
        late: [Session(0, 0, 1, (1.0, 1.0)), Session(10 * day, 10 * day, 1, (1.0, 1.0))],
    }
    assert quix_closes_before(WORKLOAD, want, 2) == {
        early: day - 2 * GAP - 600_000,
        late: 10 * day - 2 * GAP - 600_000,
    }
    # The early partition's second session is not closed in Quix: not asked of it.
    quix = {early: want[early][:1], late: want[late][:1]}
    figures = check(WORKLOAD, want, want, quix, partitions=2)
    assert figures["sessions_quix_checked"] == 2
    with pytest.raises(RuntimeError, match=f"Quix, key {early}"):
        check(WORKLOAD, want, want, {early: [], late: want[late][:1]}, partitions=2)
