"""Every topic, table, consumer group and state dir of a pipeline is namespaced here.

The prefix carries the pipeline's name and version, so two versions of one pipeline
can run side by side (for reprocessing) without sharing anything but the input topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.spec import PipelineSpec


def version_prefix(pipeline: str, version: int) -> str:
    return f"kappa.{pipeline}.v{version}"


def repartition_topic(pipeline: str, version: int) -> str:
    """A version's repartition hop: input records re-keyed by the event's key, on its
    partition for the version's N (agents/stages/hop.py)."""
    return f"{version_prefix(pipeline, version)}.repartition"


def pipeline_control_topic(pipeline: str) -> str:
    """The pipeline's own compacted topic, shared by its versions (one partition): it
    records which version is active, under the key ``active`` (app.versions.active), and
    the ledger of replays into the shared input topic, under ``replay:<id>``
    (app.replay.ledger): every version reads that topic, so what was replayed into it is
    the pipeline's."""
    return f"kappa.{pipeline}.control"


@dataclass(frozen=True)
class PipelineNames:
    spec: PipelineSpec

    @property
    def prefix(self) -> str:
        return version_prefix(self.spec.name, self.spec.version)

    @property
    def app_id(self) -> str:
        """Faust app id: also the consumer group and the changelog topic prefix."""
        return self.prefix

    @property
    def input_topic(self) -> str:
        return self.spec.input_topic

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def repartition_topic(self) -> str:
        return repartition_topic(self.spec.name, self.spec.version)

    @property
    def late_topic(self) -> str:
        return f"{self.prefix}.late"

    @property
    def results_topic(self) -> str:
        """Final window results, compacted, keyed by key and window."""
        return f"{self.prefix}.window-results"

    @property
    def control_topic(self) -> str:
        """Replay progress and completion markers (one partition)."""
        return f"{self.prefix}.control"

    @property
    def pipeline_control_topic(self) -> str:
        return pipeline_control_topic(self.spec.name)

    @property
    def history_topic(self) -> str:
        """A version's own history, before its cut (specs with ``[history]`` only)."""
        return f"{self.prefix}.history"
