"""What a version holds, for ``kappa verify``: its tables through its workers' query
API, and its final window results from the compacted results topic."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from agents.errors import KappaError
from agents.names import PipelineNames
from agents.partitions import expected_partition
from app.key_routing import ROUTED_HEADER
from app.settings import KappaSettings
from app.verify.batch import WindowId
from app.verify.reading import OnProgress, read_topic

# The API refuses a windows query over more than this many windows of one size.
MAX_WINDOWS_PER_QUERY = 10_000
CONCURRENCY = 16
# A request marked as routed is answered by the worker asked, for its own version: not
# passed on to the active version's workers (app/key_routing.py), which a check of a
# version that is not active needs. verify asks each key's owner.
ASK_THIS_WORKER = {ROUTED_HEADER: "kappa-verify"}
ATTEMPTS = 5  # reads of a key whose records keep arriving, before its windows are skipped


@dataclass
class WorkerView:
    """The version's workers' statuses, merged: per partition, its watermark and the
    last input offset processed (-1: none), and the partitions whose processor has
    started and closed every window its watermark passed (a watermark move closes its
    windows in steps: until they are done, which of them are final is not known)."""

    urls: list[str]
    owner: dict[int, str] = field(default_factory=dict)
    watermarks: dict[int, int | None] = field(default_factory=dict)
    processed: dict[int, int] = field(default_factory=dict)
    done_closing: set[int] = field(default_factory=set)


@dataclass
class Actual:
    totals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per key, the offset of the last event applied per source input partition.
    fences: dict[str, dict[int, int]] = field(default_factory=dict)
    windows: dict[WindowId, dict[str, Any]] = field(default_factory=dict)
    listed_keys: set[str] = field(default_factory=set)
    finals: dict[WindowId, dict[str, Any]] = field(default_factory=dict)
    # Keys whose windows were read at another moment than their totals (still moving).
    moving: set[str] = field(default_factory=set)


class WorkerApi:
    """The query API of a version's workers, over one HTTP session."""

    def __init__(self, urls: list[str], timeout: float = 30.0) -> None:
        self.urls = urls
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def close(self) -> None:
        await self._session.close()

    async def get(self, base: str, path: str, **params: Any) -> tuple[int, Any]:
        async with self._limit:
            try:
                async with self._session.get(
                    f"{base}{path}", params=params, headers=ASK_THIS_WORKER
                ) as response:
                    return response.status, orjson.loads(await response.read())
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                raise KappaError(
                    f"the worker at {base} did not answer {path} ({exc!r})",
                    hint="check that the version's workers run and that their"
                    " KAPPA_ADVERTISED_URL is reachable from here, then run verify again",
                ) from None

    async def view(self) -> WorkerView:
        view = WorkerView(urls=self.urls)
        for url in self.urls:
            status, body = await self.get(url, "/api/status")
            if status != 200:
                raise _unanswered(url, "/api/status", status, body)
            for p in body["partitions_owned"]:
                view.owner[int(p)] = url
            for p, watermark in body["watermarks"].items():
                view.watermarks[int(p)] = watermark
            for p, offset in body["processed_offsets"].items():
                view.processed[int(p)] = max(view.processed.get(int(p), -1), int(offset))
            view.done_closing |= {int(p) for p in body["state"]} - set(body["closing"])
        return view

    async def keys(self) -> set[str]:
        """Every key of every worker (``/api/keys`` lists the asked worker's own)."""
        keys: set[str] = set()
        for url in self.urls:
            after = ""
            while True:
                status, body = await self.get(url, "/api/keys", limit=1000, after=after)
                if status != 200:
                    raise _unanswered(url, "/api/keys", status, body)
                keys.update(body["keys"])
                if body["next"] is None:
                    break
                after = body["next"]
        return keys

    async def key(
        self, base: str, key: str, ranges: list[tuple[int, int]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], bool] | None:
        """A key's totals body, its windows with a start in ``ranges``, and whether they
        are of one moment; None if the version does not know the key.

        Totals and windows are two requests: a record applied between them would make
        them disagree. So the totals are asked again after the windows, and the three
        answers are taken only if the key's last offset did not move meanwhile, after a
        few tries; else the windows are flagged as of another moment."""
        quoted = urllib.parse.quote(key, safe="")
        totals = await self._totals(base, key, quoted)
        if totals is None:
            return None
        for _ in range(ATTEMPTS):
            windows: list[dict[str, Any]] = []
            for start, end in ranges:
                status, body = await self.get(
                    base, f"/api/keys/{quoted}/windows", **{"from": start, "to": end}
                )
                if status != 200:
                    raise _unanswered(base, f"/api/keys/{key}/windows", status, body)
                windows.extend(body["windows"])
            again = await self._totals(base, key, quoted)
            if again is None:
                raise KappaError(f"{base} forgot key {key!r} between two requests")
            if again["source_offsets"] == totals["source_offsets"]:
                return totals, windows, True
            totals = again
        return totals, windows, False

    async def _totals(self, base: str, key: str, quoted: str) -> dict[str, Any] | None:
        status, body = await self.get(base, f"/api/keys/{quoted}")
        if status == 404:
            return None
        if status != 200:
            raise _unanswered(base, f"/api/keys/{key}", status, body)
        result: dict[str, Any] = body
        return result


def _unanswered(base: str, path: str, status: int, body: Any) -> KappaError:
    return KappaError(
        f"the worker at {base} answered {path} with HTTP {status}: {body}",
        hint="a 503 means a rebalance is under way: run verify again once `kappa status`"
        " shows every partition owned",
    )


def time_ranges(lo: int, hi: int, smallest_step_ms: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut into ranges the API answers (at most 10,000 windows each)."""
    span = MAX_WINDOWS_PER_QUERY * smallest_step_ms
    return [(start, min(start + span, hi)) for start in range(lo, hi, span)]


async def read_actual(
    api: WorkerApi,
    view: WorkerView,
    keys: Iterable[str],
    partition_of: dict[str, int],
    partitions: int,
    ranges: list[tuple[int, int]],
    on_progress: OnProgress,
) -> Actual:
    """Totals and windows of ``keys`` and of every key the workers list, each asked of
    the worker that owns its partition."""
    actual = Actual(listed_keys=await api.keys())
    wanted = sorted(set(keys) | actual.listed_keys)
    fallback = api.urls[0]
    asked = 0

    async def one(key: str) -> None:
        partition = partition_of.get(key)
        if partition is None:  # a key the batch answer does not have
            partition = expected_partition(key, partitions)
        base = view.owner.get(partition, fallback)
        found = await api.key(base, key, ranges)
        nonlocal asked
        asked += 1
        on_progress("asking the workers for every key", asked, len(wanted))
        if found is None:
            return
        body, windows, consistent = found
        if not consistent:
            actual.moving.add(key)
        actual.totals[key] = body["totals"]
        actual.fences[key] = {int(p): int(o) for p, o in body["source_offsets"].items()}
        for window in windows:
            actual.windows[(key, window["window"], int(window["start_ms"]))] = window

    await asyncio.gather(*(one(key) for key in wanted))
    return actual


async def read_finals(settings: KappaSettings, names: PipelineNames) -> dict[WindowId, Any]:
    """The results topic as compaction leaves it: the last result per record key."""
    finals: dict[WindowId, Any] = {}
    for record in await read_topic(settings, names.results_topic):
        if record.value is None:
            continue
        body = orjson.loads(record.value)
        finals[(body["key"], body["window"], int(body["start_ms"]))] = body
    return finals
