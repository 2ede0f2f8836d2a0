"""Starting a Kafka client: brokers that are away are waited for, up to a limit."""

from __future__ import annotations

import time

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.kafka import BrokerRefusedError, producer, start_client
from shared.settings import Settings

from ..services import free_port


async def test_brokers_that_stay_away_fail_the_start_after_the_patience_given() -> None:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens
    client = producer(settings)
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError) as failed:
        await start_client(client, settings, patience=2.0)
    await client.stop()
    assert not isinstance(failed.value, BrokerRefusedError)
    # tried at 0, 0.5 and 1.5 s; one more wait (2 s) would overrun the patience
    assert 1.4 <= time.monotonic() - started < 2.5
