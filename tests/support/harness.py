"""The ``kappa`` fixture's value: one handle on a test's broker, names and workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.settings import KappaSettings
from tests.support.worker import WorkerProcess


@dataclass(frozen=True)
class Harness:
    """What a failure test needs, in one fixture: the broker settings, this test's
    names and paths, and its pipeline specs, worker environments and workers."""

    settings: KappaSettings
    tmp_path: Path
    unique: str
    make_spec: Callable[..., Path]
    env: Callable[..., dict[str, str]]
    start_worker: Callable[[dict[str, str]], WorkerProcess]

    @property
    def topic(self) -> str:
        return f"test-input-{self.unique}"
