"""``send_keyed`` against the real broker: its batches go out without waiting for the
producer's linger, in one request, each key's messages in order on its partition."""

from __future__ import annotations

import time

import pytest
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import producer, send_keyed
from shared.settings import Settings
from shared.topics import LEDGER

from ..kafka_io import read_topic

pytestmark = pytest.mark.integration


async def test_batches_go_out_without_waiting_for_the_linger(settings: Settings) -> None:
    topic = settings.topic_prefix + LEDGER
    p = producer(settings, linger_ms=2000)  # an open batch would wait this long
    await p.start()
    try:
        await send_keyed(p, topic, [(b"warm|up", b"0")])  # metadata and producer id fetched
        messages = [(f"UK|SKU-{i % 40}".encode(), str(i).encode()) for i in range(400)]
        started = time.monotonic()
        assert await send_keyed(p, topic, messages) == 400
        assert time.monotonic() - started < 1.0
    finally:
        await p.stop()
    records = await read_topic(settings.kafka_bootstrap_servers, topic, 401)
    everything = list(range(6))
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        assert r.partition == DefaultPartitioner()(r.key, everything, everything)
        if r.key != b"warm|up":
            by_key.setdefault(r.key, []).append(int(r.value))
    assert sum(len(v) for v in by_key.values()) == 400
    for values in by_key.values():
        assert values == sorted(values)
