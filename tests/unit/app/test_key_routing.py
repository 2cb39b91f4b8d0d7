"""``KeyRouter``: which worker answers a key query, and when none can yet.

The app, the request and the view are stand-ins (no Faust web server): only what the
router reads of them. The partition here is this worker's own, so no request leaves.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.key_routing import ROUTED_HEADER, KeyRouter


class AppStandIn:
    def __init__(self, in_recovery: bool) -> None:
        self.in_recovery = in_recovery


class VersionsStandIn:
    def forward_to(self) -> int | None:
        return None  # no version promoted: each worker answers for its own


class RequestStandIn:
    def __init__(self, routed: bool) -> None:
        self.headers = {ROUTED_HEADER: "other-worker"} if routed else {}


class ViewStandIn:
    def error(self, status: int, reason: str, **fields: Any) -> dict[str, Any]:
        return {"status": status, "error": reason, **fields}


def _router(in_recovery: bool, behind: frozenset[int] = frozenset()) -> KeyRouter:
    app: Any = AppStandIn(in_recovery)
    versions: Any = VersionsStandIn()
    return KeyRouter(
        app, "kappa.orders.v1-keys-changelog", "worker-a", versions, behind.__contains__
    )


@pytest.mark.parametrize("routed", [False, True])
async def test_the_owner_answers_its_own_partition(routed: bool) -> None:
    view: Any = ViewStandIn()
    request: Any = RequestStandIn(routed)
    assert await _router(False).answer_elsewhere(view, request, "c1", 3, {3}) is None


@pytest.mark.parametrize("routed", [False, True])
async def test_while_its_stores_are_recovered_the_owner_says_retry(routed: bool) -> None:
    """After a rebalance the owner's stores are rebuilt from the changelogs: a key read
    then could be missing (a 404 that is wrong) or old. A 503 says to retry."""
    view: Any = ViewStandIn()
    request: Any = RequestStandIn(routed)
    answer: Any = await _router(True).answer_elsewhere(view, request, "c1", 3, {3})
    assert answer == {
        "status": 503,
        "error": "partition 3 of key 'c1' is being recovered from its changelogs after a "
        "rebalance; retry shortly",
        "key": "c1",
        "partition": 3,
    }


@pytest.mark.parametrize("routed", [False, True])
async def test_a_state_recovered_behind_the_group_says_retry_until_caught_up(
    routed: bool,
) -> None:
    """Recovered from another worker's older state, the owner's stores are behind what
    the group committed until the commit-interval timer applies the rest: a read then
    would be old. Other partitions answer."""
    view: Any = ViewStandIn()
    request: Any = RequestStandIn(routed)
    router = _router(False, behind=frozenset({3}))
    answer: Any = await router.answer_elsewhere(view, request, "c1", 3, {3, 4})
    assert answer == {
        "status": 503,
        "error": "partition 3 of key 'c1' is behind records it reads again from Kafka (its "
        "state was recovered behind the group's committed offsets, or a failed store dropped "
        "its unstored changes) and catches up within a commit interval; retry shortly",
        "key": "c1",
        "partition": 3,
    }
    assert await router.answer_elsewhere(view, request, "c2", 4, {3, 4}) is None
