"""Faust's aiokafka consumer, handing whole fetches of kappa's input topic to kappa.

Faust's fetch loop (``Consumer._drain_messages``) turns every record into a ``Message``
and awaits a ``wait_first`` (two futures and an ``asyncio.wait``) per record before the
conductor hands it to a stream's queue: tens of microseconds of Python per event, more
than kappa's whole aggregation of it. A topic routed here with ``route_batches`` skips
all of that: each fetch's records of the topic go, as aiokafka returned them, to one call
of the route's ``on_records``. Every other topic (changelogs during recovery and for
standbys, custom agents' topics) still goes through Faust's own per-message path, with
its gap tracking, commits and flow control.

Faust keeps what it is good at: group membership, partition assignment, pausing and
resuming partitions around rebalances and recovery (``_wait_next_records`` fetches only
the active partitions and waits while the flow is stopped), tables, changelogs,
standbys and the web server. Records of a routed topic are never acknowledged to
Faust, so Faust never commits that topic: the route commits, through ``commit_stored``,
the offsets whose effects it has stored.

This is Faust's configurable transport: the ``faust.transports`` entry point ``kappa``
(pyproject.toml) names ``Transport`` below, and a broker URL ``kappa://host:port``
selects it. Overriding ``_drain_messages``, the one loop a Faust consumer runs, is the
narrowest place where whole fetches exist; nothing in site-packages is patched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol
from weakref import WeakKeyDictionary

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT

log = logging.getLogger(__name__)

# A broker URL scheme: kappa://host:port selects the transport below (see pyproject).
SCHEME = "kappa"


class BatchRoute(Protocol):
    """Where whole fetches of one topic go."""

    async def on_records(self, records: Mapping[TP, Sequence[Any]]) -> None:
        """One fetch's records of the topic (aiokafka ``ConsumerRecord``s), per partition
        in offset order. Returning means they are applied (maybe not yet stored)."""

    def also_streamed(self) -> bool:
        """Whether Faust agents other than the route also read the topic (custom
        agents): they then get every record through Faust's per-message path too."""


_ROUTES: WeakKeyDictionary[AppT, dict[str, BatchRoute]] = WeakKeyDictionary()
_FETCH_WAIT_MS: WeakKeyDictionary[AppT, int] = WeakKeyDictionary()


def route_batches(app: AppT, topic: str, route: BatchRoute) -> None:
    """Send the app's fetches of ``topic`` to ``route`` instead of Faust's streams."""
    _ROUTES.setdefault(app, {})[topic] = route


def limit_fetch_wait(app: AppT, wait_ms: int) -> None:
    """Let the broker hold the app's fetches at most ``wait_ms`` for data to arrive.

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting
    to change it. aiokafka keeps one fetch in flight per broker, and leaves out of it
    the partitions that still have records buffered: so a fetch sent while the worker
    was applying a fetch asked only for partitions with nothing new, and the broker held
    it the whole wait. The partitions drained meanwhile waited for it: a worker working
    through a backlog sat idle up to 1.5 s between fetches (39 to 50% of a 16-key run).
    """
    _FETCH_WAIT_MS[app] = wait_ms


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer waits ``limit_fetch_wait``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = _FETCH_WAIT_MS.get(self.app)
        if wait_ms is not None:
            # What aiokafka's start() hands its fetcher: set before the consumer starts.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with routed topics taken a fetch at a time."""

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def commit_stored(self, offsets: Mapping[TP, int]) -> bool:
        """Commit ``offsets`` (the next offset to read, per partition) for the group.

        Faust's own commit path, less its acknowledgement bookkeeping: partitions no
        longer assigned are left out, and Faust's record of committed offsets follows.
        """
        return await self._commit_offsets(offsets)

    def committed_offset(self, tp: TP) -> int | None:
        """The group's committed offset of an assigned partition (the next offset to
        read), as Faust read it at the assignment or committed it since."""
        committed: int | None = self._committed_offset.get(tp)
        return committed

    async def _drain_messages(self, fetcher: Any) -> None:
        routes = _ROUTES.get(self.app, {})
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, _active = await self._wait_next_records(timeout=1.0)
                if not records or self.should_stop:
                    await asyncio.sleep(0)
                    continue
                if not self.flow_active:
                    # Fetched while a rebalance stopped the flow: dropped, as Faust's
                    # getmany drops them, and routed ones read again from where they start.
                    await self._rewind({tp: b for tp, b in records.items() if tp.topic in routes})
                    continue
                routed: dict[str, dict[TP, Sequence[Any]]] = {}
                for tp, batch in records.items():
                    route = routes.get(tp.topic)
                    if route is not None:
                        routed.setdefault(tp.topic, {})[tp] = batch
                        if not route.also_streamed():
                            continue
                    await self._deliver_each(tp, batch)
                for topic, batches in routed.items():
                    await routes[topic].on_records(batches)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    async def _rewind(self, records: Mapping[TP, Sequence[Any]]) -> None:
        """Put each still assigned partition's position back at its first dropped record.

        Routed topics only, whose route checks each partition's continuity (a skipped
        record is read back at the partition's next one); changelogs keep Faust's own
        recovery seeks, which this must not undo.

        The rebalance's seek (``perform_seek``) moves only the partitions that have a
        committed offset. Without this, a partition with none (new after the input grew,
        or never committed by its previous owner) kept the position after the dropped
        records, and when nothing more came to it they were never read: kappa's gap
        check sees a gap only at the partition's next record.
        """
        assigned = self.assignment()
        for tp, batch in records.items():
            if batch and tp in assigned:
                await self._seek(tp, batch[0].offset)
                log.info(
                    "%s: %d record(s) fetched during a rebalance will be read again from offset %d",
                    tp,
                    len(batch),
                    batch[0].offset,
                )

    async def _deliver_each(self, tp: TP, records: Sequence[Any]) -> None:
        """Faust's per-message path for one partition's records, as its own loop does it."""
        callback = self.callback
        commit_every = self._commit_every
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        generation = self.app.consumer_generation_id
        for record in records:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            offset = record.offset
            read = self._read_offset[tp]
            if read is not None and offset < read:
                continue  # already delivered (Faust drops these too)
            if read and offset - read > 1 and acks_enabled:
                await self._add_gap(tp, read + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
            self._read_offset[tp] = offset


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with ``BatchConsumer``."""

    Consumer: ClassVar[Any] = BatchConsumer
