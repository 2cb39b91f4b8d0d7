"""Which versions of a pipeline exist on the cluster, and where a version's workers are.

A version exists when its topics do (``kappa.<name>.v<N>.…``). Its workers are the
members of its consumer group: each member's subscription metadata carries the URL
that Faust's partition assignor advertises for query routing (``ClientMetadata.url``,
the worker's ``KAPPA_ADVERTISED_URL``), so the group itself says where to ask, with no
registry of its own.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from agents.errors import KappaError
from app.kafka_client import client_options
from app.settings import KappaSettings


class UnknownVersion(KappaError):
    """The pipeline, or that version of it, has no topics on the cluster."""


class NoWorkers(KappaError):
    """A version exists, but no worker of it is running."""


async def versions_on_cluster(admin: AIOKafkaAdminClient, name: str) -> list[int]:
    """Versions of pipeline ``name`` that have topics on the cluster, ascending."""
    pattern = re.compile(rf"kappa\.{re.escape(name)}\.v(\d+)\.")
    found = {int(m.group(1)) for t in await admin.list_topics() if (m := pattern.match(t))}
    return sorted(found)


def member_urls(response: Any) -> list[str]:
    """The advertised URLs of a DescribeGroups response's members, sorted."""
    urls: set[str] = set()
    for group in response.groups:
        members = group[5]
        for member in members:
            raw = member[3]
            if not raw:
                continue
            metadata = ConsumerProtocolMemberMetadata.decode(raw)
            try:
                url = orjson.loads(metadata.user_data).get("url")
            except (orjson.JSONDecodeError, AttributeError):
                continue  # not a Faust member: nothing to ask
            if isinstance(url, str) and url:
                urls.add(url.rstrip("/"))
    return sorted(urls)


async def version_workers(settings: KappaSettings, name: str, version: int) -> list[str]:
    """The base URLs of the running workers of version ``version`` of pipeline ``name``.

    Raises UnknownVersion when the cluster has no such version (the message lists the
    versions it has), and NoWorkers when the version has no running worker.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        versions = await versions_on_cluster(admin, name)
        if version not in versions:
            if not versions:
                raise UnknownVersion(
                    f"pipeline {name!r} has no version on the cluster at {settings.bootstrap}",
                    hint="check the pipeline's name and KAPPA_BOOTSTRAP_SERVERS; a version"
                    " appears once a `kappa worker` of it has started",
                )
            listed = ", ".join(str(v) for v in versions)
            raise UnknownVersion(
                f"pipeline {name!r} has no version {version} on the cluster; it has {listed}",
                hint=f"pass --version with one of {listed}",
            )
        group = f"kappa.{name}.v{version}"
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    urls = sorted({url for response in responses for url in member_urls(response)})
    if not urls:
        raise NoWorkers(
            f"version {version} of pipeline {name!r} has no running worker (its consumer"
            f" group {group} has no members), so there are no tables to compare",
            hint=f"start one with `kappa worker` on the spec of version {version}, wait until"
            " `kappa status` shows it owns its partitions, then run verify again",
        )
    return urls
