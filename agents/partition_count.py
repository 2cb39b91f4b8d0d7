"""A version's partition count, and what a change of its input's count means.

A version keeps its state, changelogs and outputs in as many partitions as its input had
when the version was created (its own topics record that count: ``app.topics``), and a
record is applied on the input partition its key belongs on for that count. An input
that grows or is re-created while a version runs breaks both: the new partitions have no
state partition, and the keys' partitions move, while the records already produced stay
where the old count put them. Going on would fail every store of a new partition again
and again, and dead-letter or miscount its records, so the worker refuses to start, or
stops, with the cause and the fix.
"""

from __future__ import annotations

from agents.errors import PartitionsChanged


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
