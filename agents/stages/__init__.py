"""The stages a fetch of the input goes through, each a class with one job.

``agents.batch_loop.BatchLoop`` drives them, one input partition's records at a time:

    continuity (GapRepair, SeamStage) -> route (RouteStage) -> aggregate (AggregateStage)
        -> outputs (OutputStage)                      ... and, when due, store (Flusher)

- ``gaps.GapRepair``: the records must follow the partition's last applied one; skipped
  ones are read back from Kafka, ones applied before are dropped.
- ``seam.SeamStage``: a version with a cut applies its sealed history first and admits
  live events from the cut on.
- ``route.RouteStage``: decode and validate; what cannot be applied is a dead letter.
- ``aggregate.AggregateStage``: the partitions' processors and state, applied and
  checkpointed; it knows what is applied but not stored yet.
- ``outputs.OutputStage``: late events, closed windows' results and dead letters queued
  for the next flush.
- ``flush.Flusher``: when a flush is due, the ordered, acknowledged store and the commit.
- ``idle.IdleStage``: with an ``idle_timeout``, at the timer rather than per fetch, the
  clocks of quiet partitions moved to the active partitions' lowest (what that closes
  goes to outputs).
- ``slices.SliceSizer``: how many records the next slice of a fetch holds, so that each
  takes about the same time and the event loop is yielded between them.

A new stage (session windows, joins) is one more class called in ``BatchLoop._apply_chunk``
between routing and outputs; stages share no state but what they are handed.
"""
