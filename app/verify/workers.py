"""Which versions of a pipeline exist on the cluster, and where a version's workers are,
for ``kappa verify``: the versions by their topics' names (``app.versions.names``), the
workers from the version's consumer group (``app.versions.group_members``: each Faust member
advertises its URL in its group metadata), so no address has to be given."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from agents.errors import KappaError
from agents.names import version_prefix
from app.kafka_client import client_options
from app.settings import KappaSettings
from app.versions.group_members import describe_group
from app.versions.names import topics_by_version


class UnknownVersion(KappaError):
    """The pipeline, or that version of it, has no topics on the cluster."""


class NoWorkers(KappaError):
    """A version exists, but no worker of it is running."""


async def version_workers(settings: KappaSettings, name: str, version: int) -> list[str]:
    """The base URLs of the running workers of version ``version`` of pipeline ``name``.

    Raises UnknownVersion when the cluster has no such version (the message lists the
    versions it has), and NoWorkers when the version has no running worker.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        versions = sorted(topics_by_version(name, await admin.list_topics()))
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
        group = await describe_group(admin, version_prefix(name, version))
    finally:
        await admin.close()
    urls = sorted({member.url.rstrip("/") for member in group.members if member.url})
    if not urls:
        raise NoWorkers(
            f"version {version} of pipeline {name!r} has no running worker (its consumer"
            f" group {group.group} has no members), so there are no tables to compare",
            hint=f"start one with `kappa worker` on the spec of version {version}, wait until"
            " `kappa status` shows it owns its partitions, then run verify again",
        )
    return urls
