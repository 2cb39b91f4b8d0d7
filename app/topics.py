"""Create a pipeline's topics before anything produces to or consumes from them.

The local broker has topic auto-creation off: a topic auto-created with one partition
would silently break the co-partitioning of input and table changelogs.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from agents.errors import KappaError
from agents.names import PipelineNames
from app.kafka_client import client_options
from app.settings import KappaSettings

_COMPACTED = {"cleanup.policy": "compact"}


async def ensure_topics(settings: KappaSettings, names: PipelineNames) -> int:
    """Create the pipeline's missing topics; return the input topic's partition count.

    An input topic that already exists keeps its partition count, and the pipeline's
    own topics follow it, so that state stays co-partitioned with its input.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        partitions = existing.get(names.input_topic, settings.partitions)
        wanted = {
            names.input_topic: (partitions, {}),
            names.dead_letter_topic: (partitions, _COMPACTED),
            names.late_topic: (partitions, _COMPACTED),
            names.results_topic: (partitions, _COMPACTED),
            names.control_topic: (1, _COMPACTED),
        }
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
        return partitions
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    metadata = await admin.describe_topics()
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in metadata
        if topic.get("error_code", 0) == 0
    }
