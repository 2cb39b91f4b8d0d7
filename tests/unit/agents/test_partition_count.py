"""What a change of the input's partition count tells the user (``partitions_changed``)."""

from __future__ import annotations

import pytest

from agents.errors import ConfigError, PartitionsChanged
from agents.partition_count import partitions_changed, version_partitions


def test_the_same_count_is_no_change() -> None:
    assert partitions_changed("orders", "kappa.orders.v1", 4, 4) is None


def test_a_grown_input_is_followed_through_the_hop() -> None:
    assert partitions_changed("orders", "kappa.orders.v1", 6, 2) is None


def test_a_grown_input_stops_a_version_with_a_cut_naming_both_counts_and_the_fix() -> None:
    changed = partitions_changed("orders", "kappa.orders.v1", 6, 2, can_grow=False)
    assert isinstance(changed, PartitionsChanged)
    assert changed.message.startswith(
        "the input topic orders has grown to 6 partitions, but kappa.orders.v1 keeps its "
        "state in 2 and has a cut ([history])"
    )
    assert changed.hint is not None
    assert changed.hint.startswith("start a new version without [history]")
    assert "bump `version` and set `input_topic`" in changed.hint
    assert "docs/reprocessing.md" in changed.hint


def test_a_shrunk_input_says_it_was_re_created() -> None:
    changed = partitions_changed("orders", "kappa.orders.v1", 2, 6)
    assert isinstance(changed, PartitionsChanged)
    assert changed.message == (
        "the input topic orders has 2 partitions, fewer than the 6 kappa.orders.v1 was "
        "created with: the topic was deleted and re-created, its offsets started over, "
        "and this version's checkpoints no longer describe it"
    )
    assert changed.hint is not None
    assert "bump `version`" in changed.hint


def _count(
    asked: int | None, recorded: int | None, input_count: int | None, default: int = 3
) -> int:
    return version_partitions(
        "orders",
        "kappa.orders.v1",
        asked=asked,
        recorded=recorded,
        input_count=input_count,
        default=default,
    )


def test_a_new_version_takes_the_inputs_count_or_the_default_for_a_new_input() -> None:
    assert _count(None, None, 4) == 4
    assert _count(None, None, None, default=3) == 3


def test_a_new_version_takes_the_specs_count_for_a_new_input() -> None:
    assert _count(8, None, None, default=3) == 8
    assert _count(4, None, 4) == 4


def test_an_existing_version_keeps_its_recorded_count() -> None:
    assert _count(None, 4, 4) == 4
    assert _count(4, 4, 4) == 4


def test_a_spec_asking_another_count_than_the_recorded_one_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        _count(8, 4, 4)
    assert raised.value.message == (
        "the spec asks for partitions = 8, but kappa.orders.v1 was created with 4: a "
        "version's partition count never changes"
    )
    assert raised.value.hint is not None
    assert raised.value.hint.startswith("to use 8 partitions, create a new version")
    assert "set partitions = 4 or leave it out" in raised.value.hint


def test_a_new_version_may_ask_fewer_partitions_than_its_input() -> None:
    assert _count(2, None, 4) == 2


def test_a_new_version_asking_more_partitions_than_its_input_is_refused() -> None:
    with pytest.raises(PartitionsChanged) as raised:
        _count(8, None, 4)
    assert raised.value.message.startswith(
        "the spec asks for partitions = 8, but the input topic orders has 4: a version "
        "never has more partitions than its input"
    )
    assert raised.value.hint == (
        "leave `partitions` out of the spec, or set partitions = 4 or fewer; nothing was created"
    )


def test_an_input_grown_since_the_version_was_created_is_followed() -> None:
    assert _count(None, 2, 6) == 2


def test_a_shrunk_input_is_refused_and_a_version_with_a_cut_cannot_grow() -> None:
    with pytest.raises(PartitionsChanged, match=r"fewer than the 6 kappa\.orders\.v1"):
        _count(6, 6, 2)
    with pytest.raises(PartitionsChanged, match="has grown to 6 partitions"):
        version_partitions(
            "orders",
            "kappa.orders.v1",
            asked=None,
            recorded=2,
            input_count=6,
            default=3,
            can_grow=False,
        )
