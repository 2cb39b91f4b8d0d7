"""A version's partition count, and what a change of its input's count means.

A version keeps its state, changelogs and outputs in N partitions: the spec's
``partitions``, or the input's count when the version is created. Its own topics record
N (``app.topics``), so it never changes silently. The input may have more partitions
than N, or grow while the version runs: a record off its key's partition for N reaches it
through the repartition hop (agents/stages/route.py). What kappa cannot follow stops the
worker (or refuses its start) with the cause and the fix:

- an input with fewer partitions than N: the topic was deleted and re-created, and the
  version's checkpoints no longer describe it (a version is therefore never created
  with more partitions than its input);
- a version with a cut (``[history]``) whose input's count is not N: it has no hop.
"""

from __future__ import annotations

from agents.errors import ConfigError, PartitionsChanged


def version_partitions(
    topic: str,
    version: str,
    *,
    asked: int | None,
    recorded: int | None,
    input_count: int | None,
    default: int,
    can_grow: bool = True,
) -> int:
    """The version's partition count N, or why the version cannot run on its input.

    ``asked`` is the spec's ``partitions``, ``recorded`` the count the version's own
    topics were created with (None before the version exists), ``input_count`` the
    input topic's (None before it exists) and ``default`` the count for a new input.
    ``can_grow`` is False for a version without the hop (one with a cut).
    """
    if recorded is not None and asked is not None and asked != recorded:
        raise ConfigError(
            f"the spec asks for partitions = {asked}, but {version} was created with "
            f"{recorded}: a version's partition count never changes",
            f"to use {asked} partitions, create a new version (bump `version` in the "
            "spec), verify it, promote it and retire this one (docs/reprocessing.md); "
            f"to run this version, set partitions = {recorded} or leave it out",
        )
    count = recorded or asked or input_count or default
    if input_count is None or input_count == count or (can_grow and input_count > count):
        return count
    if recorded is None:
        raise PartitionsChanged(
            f"the spec asks for partitions = {count}, but the input topic {topic} has "
            f"{input_count}: "
            + (
                "a version never has more partitions than its input (fewer partitions "
                "would mean the input was re-created)"
                if can_grow
                else "a version with a cut ([history]) applies a record on the partition "
                "its key belongs on, so its count must equal its input's"
            ),
            f"leave `partitions` out of the spec, or set partitions = {input_count}"
            + (" or fewer" if can_grow else "")
            + "; nothing was created",
        )
    changed = partitions_changed(topic, version, input_count, recorded, can_grow=can_grow)
    assert changed is not None  # the counts differ
    raise changed


def partitions_changed(
    topic: str,
    version: str,
    input_partitions: int,
    version_partitions: int,
    *,
    can_grow: bool = True,
) -> PartitionsChanged | None:
    """Why ``version`` cannot go on with its input, None when it can."""
    if input_partitions == version_partitions:
        return None
    if input_partitions > version_partitions:
        if can_grow:
            return None  # its records take the hop
        return PartitionsChanged(
            f"the input topic {topic} has grown to {input_partitions} partitions, but "
            f"{version} keeps its state in {version_partitions} and has a cut "
            "([history]): a version with a cut has no repartition hop, and going on would "
            "dead-letter or miscount the records of the new partitions",
            f"start a new version without [history] (bump `version` in the spec) to "
            "follow the grown topic through the repartition hop, or create a new input "
            f"topic with {input_partitions} partitions, replay the history into it "
            "(`kappa replay`), point the producers at it, and start a new version on it "
            "(bump `version` and set `input_topic` in the spec); verify it, promote it "
            "and retire this one (docs/reprocessing.md). This version's topics stay as "
            "they were until you retire it",
        )
    return PartitionsChanged(
        f"the input topic {topic} has {input_partitions} partitions, fewer than the "
        f"{version_partitions} {version} was created with: the topic was deleted and "
        "re-created, its offsets started over, and this version's checkpoints no longer "
        "describe it",
        "start a new version (bump `version` in the spec) to compute from the re-created "
        "topic; this version's topics stay as they were until you retire it",
    )
