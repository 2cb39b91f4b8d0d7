"""``kappa status``: ask one worker, then every other worker of its consumer group.

A worker's ``/api/status`` lists the group's workers in ``owners`` (advertised URL ->
partitions), so one address is enough to reach them all.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.exit_codes import ExitCode


@dataclass
class GroupStatus:
    """Each worker's status by URL, and the workers that did not answer, with why."""

    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.unreachable else ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "unreachable": self.unreachable}


def fetch_status(base: str, timeout: float) -> dict[str, Any]:
    """One worker's ``/api/status``; raises OSError (URLError included) if it does not answer."""
    with urllib.request.urlopen(f"{base.rstrip('/')}/api/status", timeout=timeout) as response:
        body: dict[str, Any] = orjson.loads(response.read())
    return body


def group_status(base: str, timeout: float = 10.0) -> GroupStatus:
    """The status of the worker at ``base`` and of every other worker it lists.

    Raises OSError when the worker at ``base`` does not answer: then nothing is known.
    """
    first = fetch_status(base, timeout)
    group = GroupStatus(workers={first.get("url") or base: first})
    others = [url for url in first.get("owners", {}) if url not in group.workers]

    def ask(url: str) -> dict[str, Any] | str:
        try:
            return fetch_status(url, timeout)
        except (OSError, orjson.JSONDecodeError) as exc:
            return failure_reason(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(others)))) as pool:
        for url, answer in zip(others, pool.map(ask, others), strict=True):
            if isinstance(answer, str):
                group.unreachable[url] = answer
            else:
                group.workers[url] = answer
    return group


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
