"""Every topic, table, consumer group and state dir of a pipeline is namespaced here.

The prefix carries the pipeline's name and version, so two versions of one pipeline
can run side by side (for reprocessing) without sharing anything but the input topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.spec import PipelineSpec


@dataclass(frozen=True)
class PipelineNames:
    spec: PipelineSpec

    @property
    def prefix(self) -> str:
        return f"kappa.{self.spec.name}.v{self.spec.version}"

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
