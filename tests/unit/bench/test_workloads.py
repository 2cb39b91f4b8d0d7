"""The benchmark's workloads (``--workloads``): what each name means, and what a bad
one gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.spec import load_spec
from bench.workers import SPEC
from bench.workloads import DEFAULT, SMOKE, parse_workloads
from tables.windows import Sessions, WindowKind, aligned_window

HOUR = 3_600_000
DAY = 24 * HOUR


def test_names_give_keys_window_and_events() -> None:
    workloads = parse_workloads(
        "keys16, keys100k,hopping1m@25k,Keys1000,wide1k,sessions100@50k", 100_000
    )
    assert [(w.name, w.keys, w.size_ms, w.step_ms, w.gap_ms, w.events) for w in workloads] == [
        ("keys16", 16, HOUR, HOUR, 0, 100_000),
        ("keys100k", 100_000, HOUR, HOUR, 0, 100_000),
        ("hopping1m", 1_000_000, DAY, HOUR, 0, 25_000),
        ("keys1000", 1_000, HOUR, HOUR, 0, 100_000),
        ("wide1k", 1_000, HOUR, HOUR, 0, 100_000),
        ("sessions100", 100, 0, 0, 30 * 60_000, 50_000),
    ]
    assert [w.wide for w in workloads] == [False, False, False, False, True, False]
    assert [w.sessions for w in workloads] == [False, False, False, False, False, True]
    assert workloads[5].description == "50,000 events, 100 keys, sessions with a 30m gap"
    assert workloads[4].description == (
        "100,000 events, 1,000 keys, 1h tumbling window, wide records"
    )
    assert workloads[2].description == "25,000 events, 1,000,000 keys, 1d every 1h window"
    assert workloads[0].description == "100,000 events, 16 keys, 1h tumbling window"


def test_the_default_and_smoke_workloads_parse() -> None:
    assert [w.name for w in parse_workloads(DEFAULT, 100_000)] == [
        "keys1000",
        "keys16",
        "keys100000",
        "hopping1m",
        "wide1000",
    ]
    assert [w.events for w in parse_workloads(SMOKE, 2_000)] == [2_000, 1_000, 1_000]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("keys", "unknown workload 'keys'"),
        ("sliding100", "unknown workload 'sliding100'"),
        ("keys1g", "unknown workload 'keys1g'"),
        ("keys-5", "unknown workload 'keys-5'"),
        ("keys0", "keys and events must be at least 1"),
        ("hopping10@0", "keys and events must be at least 1"),
        ("keys16,hopping5,keys16", "keys16 given twice"),
        (" , ", "no workload given"),
    ],
)
def test_a_bad_workload_says_what_to_write(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        parse_workloads(text, 1_000)
    if "unknown" in error:
        for kind in ("keys<N>", "hopping<N>", "wide<N>", "sessions<N>"):
            assert kind in str(caught.value)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("keys16", aligned_window(name="1h", size_ms=HOUR, step_ms=HOUR)),
        ("hopping1m", aligned_window(name="1d/1h", size_ms=DAY, step_ms=HOUR)),
        ("sessions100", Sessions(name="session/30m", gap_ms=30 * 60_000)),
    ],
)
def test_the_bench_spec_holds_the_workloads_window(
    tmp_path: Path, text: str, window: WindowKind
) -> None:
    (workload,) = parse_workloads(text, 1_000)
    path = tmp_path / "bench.toml"
    path.write_text(SPEC.format(run="x", version=1, windows=workload.windows_toml))
    assert load_spec(path).windows == (window,)
