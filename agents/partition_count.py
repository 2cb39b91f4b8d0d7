"""A version's partition count, and what a change of its input's count means.

A version keeps its state, changelogs and outputs in N partitions: the spec's
``partitions``, or the input's count when the version is created. Its own topics record
N (``app.topics``), so it never changes silently. A record is applied on the input
partition its key belongs on for N, so the input's count must equal N. An input
that grows or is re-created while a version runs breaks both: the new partitions have no
state partition, and the keys' partitions move, while the records already produced stay
where the old count put them. Going on would fail every store of a new partition again
and again, and dead-letter or miscount its records, so the worker refuses to start, or
stops, with the cause and the fix.
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
) -> int:
    """The version's partition count N, or why the version cannot run on its input.

    ``asked`` is the spec's ``partitions``, ``recorded`` the count the version's own
    topics were created with (None before the version exists), ``input_count`` the
    input topic's (None before it exists) and ``default`` the count for a new input.
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
    if input_count is None or input_count == count:
        return count
    if recorded is None:
        raise PartitionsChanged(
            f"the spec asks for partitions = {count}, but the input topic {topic} has "
            f"{input_count}: kappa applies a record on the partition its key belongs on, "
            "so a version's count must equal its input's (it has no repartition step)",
            f"leave `partitions` out of the spec, or set partitions = {input_count}; "
            "nothing was created",
        )
    changed = partitions_changed(topic, version, input_count, recorded)
    assert changed is not None  # the counts differ
    raise changed


def partitions_changed(
    topic: str, version: str, input_partitions: int, version_partitions: int
) -> PartitionsChanged | None:
    """Why ``version`` cannot go on with its input, None when the counts agree."""
    if input_partitions == version_partitions:
        return None
    if input_partitions > version_partitions:
        return PartitionsChanged(
            f"the input topic {topic} has grown to {input_partitions} partitions, but "
            f"{version} keeps its state in {version_partitions} (the input's count when "
            "the version was created): kappa cannot follow a growing input (it has no "
            "repartition step), and going on would dead-letter or miscount the records "
            "of the new partitions",
            f"the records produced before the growth sit on their keys' partitions for "
            f"{version_partitions}, so no version can count this topic exactly: create a "
            f"new input topic with {input_partitions} partitions, replay the history into "
            "it (`kappa replay`), point the producers at it, and start a new version on "
            "it (bump `version` and set `input_topic` in the spec); verify it, promote it "
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
