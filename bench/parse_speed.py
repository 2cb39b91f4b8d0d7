"""The parse step alone: ``EventParser.parse_batch`` over records already in memory.

    .venv/bin/python -m bench.parse_speed                 # 100k wide and narrow records
    .venv/bin/python -m bench.parse_speed --profile wide  # where the time goes (cProfile)

Wide records are bench.wide's (20 fields, naive ISO times, typed JSON); narrow ones are
app.datagen's orders as ``kappa replay`` sends a CSV file's rows (4 fields, all text,
times with an offset). Both are parsed with the bench pipeline's spec, in batches of a
fetch's size, as the route stage does. It prints events per second of the process's CPU time (on a
shared machine, steadier than the wall clock), the median of ``--repeat`` passes; it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
import tomllib
from collections.abc import Sequence

import orjson

from agents.events import EventParser, Rejected
from agents.spec import parse_spec
from app.datagen import DatasetShape, generate
from bench.wide import generate_wide
from bench.workers import SPEC

# Records per parse_batch call: about what one partition's fetch holds.
BATCH = 500


def records(kind: str, events: int) -> list[bytes]:
    """``events`` records of ``kind`` (wide or narrow) as they arrive on the input topic."""
    shape = DatasetShape(events=events, keys=1_000, span_ms=14 * 86_400_000, seed=7)
    if kind == "wide":
        return [orjson.dumps(event) for event in generate_wide(shape)]
    return [
        orjson.dumps({k: "" if v is None else str(v) for k, v in event.items()})
        for event in generate(shape)
    ]


def parser() -> EventParser:
    text = SPEC.format(run="parse", version=1, windows='{ size = "1h" }')
    return EventParser(parse_spec(tomllib.loads(text), "bench spec"))


def parse_all(parse: EventParser, raws: Sequence[bytes]) -> int:
    """Parse every record in fetch-sized batches; the number of good events."""
    good = 0
    for start in range(0, len(raws), BATCH):
        parsed = parse.parse_batch(raws[start : start + BATCH])
        good += sum(1 for event in parsed if not isinstance(event, Rejected))
    return good


def rate(parse: EventParser, raws: Sequence[bytes], repeat: int) -> float:
    """Events per CPU second parsing ``raws``, the median of ``repeat`` passes."""
    seconds = []
    for _ in range(repeat):
        began = time.process_time()
        good = parse_all(parse, raws)
        seconds.append(time.process_time() - began)
        assert good == len(raws), f"{len(raws) - good} records rejected"
    return len(raws) / statistics.median(seconds)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--events", type=int, default=100_000)
    options.add_argument("--repeat", type=int, default=5, help="passes; the median is shown")
    options.add_argument(
        "--profile", choices=("wide", "narrow"), help="profile one pass instead of timing"
    )
    args = options.parse_args()
    parse = parser()
    if args.profile:
        raws = records(args.profile, args.events)
        profile = cProfile.Profile()
        profile.runcall(parse_all, parse, raws)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        return
    for kind in ("wide", "narrow"):
        raws = records(kind, args.events)
        size = sum(map(len, raws)) / len(raws)
        eps = rate(parse, raws, args.repeat)
        print(f"{kind:>6}: {eps:>10,.0f} ev/CPU s ({size:.0f} bytes/record)")


if __name__ == "__main__":
    main()
