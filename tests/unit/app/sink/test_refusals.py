"""What `kappa promote` and `kappa retire` refuse because of a pipeline's sink."""

from __future__ import annotations

from app.sink.versions import SinkSurvey, promotion_sink_refusal, retire_sink_refusal
from app.sink.views import sink_lag

ENDS = {"kappa.orders.v2.window-results": {0: 100}, "kappa.orders.v2-keys-changelog": {0: 50}}


def _survey(stored: dict[tuple[str, int], int], views: int = 1) -> SinkSurvey:
    return SinkSurvey(views, {2: sink_lag(2, ENDS, stored)})


CAUGHT_UP = {("kappa.orders.v2.window-results", 0): 100, ("kappa.orders.v2-keys-changelog", 0): 50}


def test_without_a_sink_nothing_is_refused() -> None:
    assert promotion_sink_refusal("orders", 2, None, 0) is None
    assert retire_sink_refusal("orders", 1, None) is None


def test_promotion_waits_for_the_sink_to_start_and_catch_up() -> None:
    unstarted = promotion_sink_refusal("orders", 2, _survey({}), 1000)
    assert unstarted is not None
    assert "no sink has written its tables" in unstarted.message
    assert "kappa sink postgres" in str(unstarted.hint)
    behind = {**CAUGHT_UP, ("kappa.orders.v2.window-results", 0): 10}
    refused = promotion_sink_refusal("orders", 2, _survey(behind), 50)
    assert refused is not None
    assert "90 records behind" in refused.message
    assert promotion_sink_refusal("orders", 2, _survey(behind), 90) is None
    assert promotion_sink_refusal("orders", 2, _survey(CAUGHT_UP), 0) is None


def test_an_unreachable_postgres_refuses_both() -> None:
    down = SinkSurvey(error="connection refused")
    promote = promotion_sink_refusal("orders", 2, down, 1000)
    retire = retire_sink_refusal("orders", 1, down)
    assert promote is not None
    assert retire is not None
    assert "connection refused" in promote.message
    assert "connection refused" in retire.message


def test_the_version_the_views_show_cannot_be_retired() -> None:
    refused = retire_sink_refusal("orders-eu", 1, _survey(CAUGHT_UP, views=1))
    assert refused is not None
    assert "orders_eu_windows" in refused.message
    assert retire_sink_refusal("orders-eu", 2, _survey(CAUGHT_UP, views=1)) is None
