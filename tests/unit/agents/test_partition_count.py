"""What a change of the input's partition count tells the user (``partitions_changed``)."""

from __future__ import annotations

from agents.errors import PartitionsChanged
from agents.partition_count import partitions_changed


def test_the_same_count_is_no_change() -> None:
    assert partitions_changed("orders", "kappa.orders.v1", 4, 4) is None


def test_a_grown_input_names_both_counts_and_the_new_topic_fix() -> None:
    changed = partitions_changed("orders", "kappa.orders.v1", 6, 2)
    assert isinstance(changed, PartitionsChanged)
    assert changed.message.startswith(
        "the input topic orders has grown to 6 partitions, but kappa.orders.v1 keeps its "
        "state in 2 (the input's count when the version was created)"
    )
    assert changed.hint is not None
    assert changed.hint.startswith(
        "the records produced before the growth sit on their keys' partitions for 2, so "
        "no version can count this topic exactly: create a new input topic with 6 "
        "partitions, replay the history into it (`kappa replay`)"
    )
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
