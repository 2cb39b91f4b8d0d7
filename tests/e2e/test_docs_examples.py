"""The JSON examples in docs/ match what a real worker and `kappa verify` answer.

Each checked example follows a marker line ``<!-- example: NAME -->``. A run against
the real broker (a replay with bad rows, live traffic, a promotion) produces the real
answers, and every documented object must have the shape of the real one: the same
fields (an object that documents ``"...": 0`` may have more), of the same JSON types,
nested likewise. Objects keyed by data (partitions, reasons, worker URLs) are maps:
their documented entries only show the type of their values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.datagen import BAD_ROWS, DatasetShape, generate, with_bad_rows, write
from tests.support.harness import Harness
from tests.support.results import wait_processed
from tests.support.worker import kappa_cli, run_kappa

pytestmark = pytest.mark.broker

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARKER = re.compile(r"<!-- example: (?P<name>[a-z_]+) -->\n```json\n(?P<body>.*?)\n```", re.S)
# Objects keyed by data rather than by field names, by their path in an example.
MAPS = {
    "input.bad",
    "counts.dead_letters_by_reason_since_start",
    "owners",
    "state",
}


def documented_examples() -> dict[str, Any]:
    examples: dict[str, Any] = {}
    for page in sorted(DOCS.glob("*.md")):
        for match in MARKER.finditer(page.read_text()):
            name = match["name"]
            assert name not in examples, f"example {name} appears twice"
            examples[name] = json.loads(match["body"])
    return examples


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def shape_differences(doc: Any, real: Any, path: str = "") -> list[str]:
    """Where ``doc`` does not have the shape of ``real``; a null on either side is any
    type (a field that is null until something happens)."""
    where = path or "the example"
    if doc is None or real is None:
        return []
    if _kind(doc) != _kind(real):
        return [f"{where}: documented as {_kind(doc)}, answered {_kind(real)}"]
    if isinstance(doc, list):
        return shape_differences(doc[0], real[0], f"{path}[0]") if doc and real else []
    if not isinstance(doc, dict):
        return []
    if path in MAPS or all(key.isdigit() for key in doc):  # {} documents an empty map
        sample = next(iter(real.values()), None)
        return [
            difference
            for key, value in doc.items()
            for difference in shape_differences(value, sample, f"{path}.{key}")
        ]
    found = []
    missing = sorted(set(doc) - set(real) - {"..."})
    if missing:
        found.append(f"{where}: documents {missing}, not in the answer")
    if "..." not in doc and (extra := sorted(set(real) - set(doc))):
        found.append(f"{where}: the answer has {extra}, not documented")
    for key in sorted(set(doc) & set(real)):
        found += shape_differences(doc[key], real[key], f"{path}.{key}".lstrip("."))
    return found


def test_the_shape_check_catches_drift() -> None:
    real = {"input": {"records": 20000, "bad": {}}, "lag": {"0": 0, "1": 0}, "new": 1}
    same = {"input": {"records": 1, "bad": {"bad_time": 4}}, "lag": {"0": 0}, "...": 0}
    assert shape_differences(same, real) == []
    retyped = {"input": {"records": "1", "bad": {}}, "lag": {}, "new": 1}
    assert shape_differences(retyped, real) == ["input.records: documented as str, answered number"]
    assert shape_differences({"input": {"records": 1, "bad": {}}, "lag": {}}, real) == [
        "the example: the answer has ['new'], not documented"
    ]
    assert shape_differences({"gone": 2, "...": 0}, real) == [
        "the example: documents ['gone'], not in the answer"
    ]


def test_the_docs_examples_match_a_run(kappa: Harness) -> None:
    spec = kappa.make_spec()
    env = kappa.env(spec, partitions=2)
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    # As the README's runbook does it: history with bad rows, let through.
    rows = list(with_bad_rows(generate(DatasetShape(events=3_000, keys=50, seed=7)), 500))
    history = kappa.tmp_path / "history.csv"
    write(iter(rows), history)
    bad_rows = sum(row in BAD_ROWS for row in rows)
    run_kappa(env, "replay", str(history), "--max-bad-rows", str(bad_rows))
    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    run_kappa(env, "promote", f"t{kappa.unique}", "1")
    worker.wait_until(
        lambda: worker.get("/api/active")[1]["active"] is not None, 30, "the promotion"
    )

    verified = kappa_cli(env, "verify", str(spec), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    real = {
        "verify": json.loads(verified.stdout),
        "status": worker.get("/api/status")[1],
        "active": worker.get("/api/active")[1],
    }
    for name, answer in real.items():  # kept beside the worker's log, to write docs from
        (kappa.tmp_path / f"{name}.json").write_text(json.dumps(answer, indent=2))
    examples = documented_examples()
    assert set(examples) == set(real)
    for name, doc in examples.items():
        assert shape_differences(doc, real[name]) == [], name
    # What the verify example says of a replay's bad rows: they went to the dead-letter
    # topic, not into the input it reads.
    assert real["verify"]["input"]["bad"] == {}
    assert real["verify"]["input"]["records"] == len(rows) - bad_rows
    assert worker.stop() == 0
