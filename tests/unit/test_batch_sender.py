"""BatchSender's start against a broker that is not there: the connection error, and
no producer left unclosed behind it (no broker needed: nothing listens on the port)."""

from __future__ import annotations

import gc
import socket
import warnings

import pytest
from aiokafka.errors import KafkaConnectionError

from agents.batch_sender import BatchSender


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # released: nothing listens on it now


async def test_a_failed_start_raises_and_closes_its_producer() -> None:
    sender = BatchSender(
        {"bootstrap_servers": f"127.0.0.1:{_closed_port()}", "request_timeout_ms": 2000}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KafkaConnectionError):
            await sender.start()
        gc.collect()
    assert not [w for w in caught if "Unclosed AIOKafkaProducer" in str(w.message)]
    # Nothing half-started is kept: the next need of the producer tries again.
    with pytest.raises(KafkaConnectionError):
        await sender.partition_count("t")
