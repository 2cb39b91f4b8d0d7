"""``kappa sink postgres PIPELINE``: one version's results and totals into PostgreSQL,
exactly once.

It reads two of the version's topics, the final window results and its ``keys`` table's
changelog (each key's record, written by the worker when it stores a batch), in a
consumer group of its own, ``kappa.<name>.v<N>.sink-postgres``, which spreads the
partitions over however many sink processes run. The group only assigns partitions:
offsets live in PostgreSQL, moved in the same transaction as the rows
(``app.sink.store``), so after any crash the sink resumes exactly after the last
transaction that committed. PostgreSQL down or unreachable: the batch is dropped from
memory, and the sink retries with a doubling wait, then reads again from the stored
offsets. A record that fits no row goes to the dead-letter table with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from agents.names import PipelineNames
from agents.spec import PipelineSpec
from app.kafka_client import client_options
from app.settings import KappaSettings
from app.sink.metrics import SinkMetrics
from app.sink.schema import BadRow, SinkTables
from app.sink.store import Fenced, SinkBatch, SinkStore
from app.sink.views import first_line
from tables.claims import admitted, claimed_by

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5
IDLE_CHECK_S = 5.0  # an idle sink asks PostgreSQL this often whether it is there
Connection = psycopg.AsyncConnection[tuple[object, ...]]


def sink_group(spec: PipelineSpec) -> str:
    return f"{PipelineNames(spec).prefix}.sink-postgres"


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forgets the positions of revoked partitions: assigned ones are sought again from
    the offsets in PostgreSQL before any of their records is written."""

    def __init__(self, positions: dict[TopicPartition, int]) -> None:
        self.positions = positions

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self.positions.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


class PostgresSink:
    def __init__(self, settings: KappaSettings, spec: PipelineSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.tables = SinkTables.of(spec, settings.postgres_schema)
        self.store = SinkStore(self.tables)
        self.results_topic, self.totals_topic = self.tables.source_topics
        self.metrics = SinkMetrics(spec.name, spec.version)
        # The next offset to write per owned partition, as stored in PostgreSQL, and per
        # changelog partition the token of the last claim read before it.
        self.positions: dict[TopicPartition, int] = {}
        self.owners: dict[TopicPartition, bytes | None] = {}
        self._conn: Connection | None = None
        self._backoff = FIRST_BACKOFF
        self._last_answer = time.monotonic()  # PostgreSQL's last answer to this sink

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=sink_group(self.spec),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.sink_batch_rows,
            # Topics that appear after the start (a sink started before its worker)
            # are found within seconds, not aiokafka's default 5 minutes.
            metadata_max_age_ms=5000,
        )
        await consumer.start()
        consumer.subscribe(
            [self.results_topic, self.totals_topic], listener=_Assignment(self.positions)
        )
        log.info(
            "sink for %s v%d: %s and %s -> %s (schema %s)",
            self.spec.name, self.spec.version, self.results_topic, self.totals_topic,
            self.tables.windows, self.tables.schema,
        )  # fmt: skip
        try:
            while not stop.is_set():
                await self._step(consumer, stop)
        finally:
            await consumer.stop()
            if self._conn is not None:
                await self._conn.close()

    async def _step(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        try:
            conn = await self._connection()
            await self._seek_new(consumer, conn)
            fetched = await consumer.getmany(
                timeout_ms=500, max_records=self.settings.sink_batch_rows
            )
            batch = self._batch(fetched)
            if batch.offsets:
                await self._write(conn, batch)
            elif time.monotonic() - self._last_answer > IDLE_CHECK_S:
                await conn.execute("SELECT 1")  # idle: find out that PostgreSQL went away
                self._last_answer = time.monotonic()
            self._report_lag(consumer)
        except Fenced as exc:
            log.warning("%s: this sink no longer owns them; reading offsets again", exc)
            self.positions.clear()
        except psycopg.Error as exc:  # down, unreachable, or refused: retry, never crash
            await self._lost(exc, stop)
        except KafkaError as exc:  # the records stay in Kafka: read them again
            log.warning("Kafka failed (%r); reading from the stored offsets again", exc)
            self.positions.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=FIRST_BACKOFF)

    async def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.settings.resolved_postgres_url, autocommit=True, connect_timeout=10
            )
            await self.store.create(self._conn)
            self.positions.clear()  # what was in flight may not have committed: read again
            self.metrics.set_up(True)
            if self._backoff > FIRST_BACKOFF:
                log.info("PostgreSQL is back; resuming from the offsets stored in it")
            self._backoff = FIRST_BACKOFF
        return self._conn

    async def _lost(self, exc: psycopg.Error, stop: asyncio.Event) -> None:
        """PostgreSQL is down or unreachable: say so, wait, and try again; nothing is lost,
        as the offsets in PostgreSQL did not move past what it holds."""
        self.metrics.set_up(False)
        self.metrics.retried()
        if self._conn is not None:
            await self._conn.close()
        self._conn = None
        reason = first_line(exc)
        log.error(
            "PostgreSQL failed the sink's transaction or is unreachable (%s); retrying in "
            "%.1fs. Nothing is lost: the sink resumes from the offsets stored in PostgreSQL. "
            "Check the server, or KAPPA_POSTGRES_URL",
            reason,
            self._backoff,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=self._backoff)
        self._backoff = min(self._backoff * 2, self.settings.sink_max_backoff)

    async def _seek_new(self, consumer: AIOKafkaConsumer, conn: Connection) -> None:
        """Seek every owned partition without a position to its offset in PostgreSQL."""
        new = [tp for tp in consumer.assignment() if tp not in self.positions]
        if not new:
            return
        begins = await consumer.beginning_offsets(new)
        stored = await self.store.read_offsets(
            conn, {(tp.topic, tp.partition): begins[tp] for tp in new}
        )
        for tp in new:
            offset, self.owners[tp] = stored[(tp.topic, tp.partition)]
            consumer.seek(tp, offset)
            self.positions[tp] = offset

    def _batch(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> SinkBatch:
        batch = SinkBatch()
        for tp, records in fetched.items():
            expected = self.positions.get(tp)
            # Records fetched before a seek, or of a partition not yet sought, wait.
            fresh = [r for r in records if expected is not None and r.offset >= expected]
            if expected is None or not fresh:
                continue
            if tp.topic == self.results_topic:
                for record in fresh:
                    self._add(batch, tp, record)
            else:
                self._add_totals(batch, tp, fresh)
            batch.offsets[(tp.topic, tp.partition)] = (expected, fresh[-1].offset + 1)
        return batch

    def _add_totals(
        self, batch: SinkBatch, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """A changelog partition's records, following the workers' claims as a recovery
        does (``tables.claims``): a record a worker wrote after another claimed the
        partition (a zombie's) is skipped, so the table never shows a value that the
        worker owning the key does not hold. Until it has read a claim (a sink upgraded
        from before claims, resuming after the last one) it takes every record, as it
        did before: a worker claims at every rebalance, so one comes."""
        owner, skipped = self.owners.get(tp), 0
        for record in records:
            if (token := claimed_by(record.key)) is not None:
                owner = token  # a claim holds no key's totals
            elif owner is None or admitted(owner, record.headers):
                self._add(batch, tp, record)
            else:
                skipped += 1
        batch.owners[(tp.topic, tp.partition)] = owner
        if skipped:
            log.warning(
                "skipped %d record(s) of %s[%d] written after another worker claimed the "
                "partition (a worker that lost it, writing late); its owner's values stand",
                skipped, tp.topic, tp.partition,
            )  # fmt: skip

    def _add(
        self, batch: SinkBatch, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> None:
        try:
            if tp.topic == self.results_topic:
                row = self.tables.window_row(record.value)
                batch.windows[(row[0], row[1], row[2])] = row
            else:
                row = self.tables.totals_row(record.key, record.value)
                batch.totals[row[0]] = row
        except BadRow as exc:
            log.warning("dead letter %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc)
            batch.dead_letters.append(
                (tp.topic, tp.partition, record.offset, record.key, record.value, str(exc))
            )

    async def _write(self, conn: Connection, batch: SinkBatch) -> None:
        began = time.perf_counter()
        await self.store.write(conn, batch)
        self._last_answer = time.monotonic()
        self.metrics.wrote(
            len(batch.windows),
            len(batch.totals),
            len(batch.dead_letters),
            time.perf_counter() - began,
        )
        for (topic, partition), (_, end) in batch.offsets.items():
            self.positions[TopicPartition(topic, partition)] = end
        for (topic, partition), owner in batch.owners.items():
            self.owners[TopicPartition(topic, partition)] = owner

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp, position in self.positions.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.metrics.set_lag(tp.topic, tp.partition, max(0, highwater - position))


def run_sink(settings: KappaSettings, spec: PipelineSpec) -> None:
    """Run the sink until SIGTERM or Ctrl-C; the transaction under way finishes or rolls
    back, and either way the stored offsets say where the next run resumes."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sink = PostgresSink(settings, spec)
    sink.metrics.serve(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sink.run(stop)

    asyncio.run(main())
