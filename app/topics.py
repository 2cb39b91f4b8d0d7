"""Create a pipeline's topics before anything produces to or consumes from them.

The local broker has topic auto-creation off: a topic auto-created with one partition
would silently break the co-partitioning of input and table changelogs.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from agents.errors import KappaError
from agents.names import PipelineNames
from agents.partition_count import version_partitions
from app.kafka_client import client_options
from app.settings import KappaSettings

VISIBLE_TIMEOUT_S = 30.0
_COMPACTED = {"cleanup.policy": "compact"}
# A version's history is its only copy of events before the cut, and its records carry
# old event times as timestamps: time-based retention would delete them at once.
_KEPT = {"retention.ms": "-1"}


async def ensure_topics(settings: KappaSettings, names: PipelineNames) -> int:
    """Create the pipeline's missing topics; return the version's partition count N.

    N is the spec's ``partitions``, or else the input's count (``KAPPA_PARTITIONS`` for
    an input that does not exist yet). The version's own topics are created with N, and
    its results topic then records N; the input may have more partitions than N, or grow
    (its records take the repartition hop), but never fewer (``agents.partition_count``).
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        partitions = version_partitions(
            names.input_topic,
            names.prefix,
            asked=names.spec.partitions,
            recorded=existing.get(names.results_topic),
            input_count=existing.get(names.input_topic),
            default=settings.partitions,
            can_grow=names.spec.history is None,
        )
        wanted = {
            names.input_topic: (partitions, {}),
            names.repartition_topic: (partitions, {}),
            names.dead_letter_topic: (partitions, _COMPACTED),
            names.late_topic: (partitions, _COMPACTED),
            names.results_topic: (partitions, _COMPACTED),
            names.control_topic: (1, _COMPACTED),
            names.pipeline_control_topic: (1, _COMPACTED),
        }
        if names.spec.history is not None:
            # Partitioned like the input, so that history partition p holds the keys of
            # input partition p and the worker owning p reads both.
            wanted[names.history_topic] = (partitions, _KEPT)
        missing = [
            NewTopic(
                name=topic,
                num_partitions=count,
                replication_factor=settings.replication_factor,
                topic_configs=config,
            )
            for topic, (count, config) in wanted.items()
            if topic not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, *rest in response.topic_errors:
                # Already existing means another worker or a replay created it first.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise KappaError(
                        f"could not create topic {topic}: {for_code(code).__name__} {rest}",
                        hint="check the broker's log and that the replication factor "
                        "(KAPPA_REPLICATION_FACTOR) does not exceed the number of brokers",
                    )
            created = {topic.name: topic.num_partitions for topic in missing}
            await _until_visible(admin, created)
        return partitions
    finally:
        await admin.close()


async def _until_visible(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> None:
    """Wait until the broker's metadata shows every new topic with all its partitions.

    A topic is created before every broker's metadata cache shows it. A worker whose
    consumer group leader assigns partitions from a cache without the input topic gets
    no partitions of it, and aiokafka only looks again at its next metadata refresh.
    """
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while True:
        counts = await _partition_counts(admin)
        late = sorted(topic for topic, count in wanted.items() if counts.get(topic) != count)
        if not late:
            return
        if time.monotonic() >= deadline:
            raise KappaError(
                f"topics created but not visible after {VISIBLE_TIMEOUT_S:.0f} s: "
                f"{', '.join(late)}",
                hint="the brokers are slow to agree on metadata; check the broker's log, "
                "then start again (the topics exist now)",
            )
        await asyncio.sleep(0.1)


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    metadata = await admin.describe_topics()
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in metadata
        if topic.get("error_code", 0) == 0
    }
