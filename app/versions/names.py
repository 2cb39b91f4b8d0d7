"""Which version of a pipeline a topic or a consumer group belongs to.

``agents.names.PipelineNames`` names one version's topics from its spec; the commands that
list, promote and retire versions start from a pipeline's name alone and find its
versions on the cluster by these names: ``kappa.<name>.v<N>`` is version N's consumer
group (Faust's app id), ``kappa.<name>.v<N>.<what>`` its own topics and
``kappa.<name>.v<N>-<table>-changelog`` (Faust's naming) its tables' changelogs.
"""

from __future__ import annotations

import re

from agents.names import version_prefix


def _version_pattern(pipeline: str) -> re.Pattern[str]:
    return re.compile(rf"^kappa\.{re.escape(pipeline)}\.v(\d+)(?:$|[.-])")


def version_of(pipeline: str, name: str) -> int | None:
    """The version a topic or consumer group of ``pipeline`` belongs to, else None."""
    match = _version_pattern(pipeline).match(name)
    return int(match.group(1)) if match else None


def topics_by_version(pipeline: str, topics: list[str]) -> dict[int, list[str]]:
    """The topics of each version of ``pipeline`` among ``topics``, sorted."""
    found: dict[int, list[str]] = {}
    for topic in sorted(topics):
        version = version_of(pipeline, topic)
        if version is not None:
            found.setdefault(version, []).append(topic)
    return found


def version_groups(pipeline: str, groups: list[str]) -> dict[int, str]:
    """The consumer group of each version of ``pipeline`` among ``groups``."""
    found: dict[int, str] = {}
    for group in groups:
        version = version_of(pipeline, group)
        if version is not None and group == version_prefix(pipeline, version):
            found[version] = group
    return found


def changelog_topic(pipeline: str, version: int, table: str) -> str:
    """Faust's name of a version's table changelog (``<app id>-<table>-changelog``)."""
    return f"{version_prefix(pipeline, version)}-{table}-changelog"
