"""The suite on a Kafka broker that takes SASL/SCRAM over TLS only: an event published through
that listener is recorded and relayed by the ledger; the librdkafka producer gets through too; a
wrong password is refused with an error that says so."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer
from pydantic import SecretStr

from services.ledger.app import create_service as create_ledger
from shared.kafka import (
    BrokerRefusedError,
    client_options,
    librdkafka_options,
    producer,
    start_client,
)
from shared.settings import Settings
from shared.topics import LEDGER, SCANS, create_topics

from .. import events as ev
from ..kafka_io import eventually
from ..secure_servers import make_certificates, sasl_ssl_kafka
from ..services import ROOT, running

pytestmark = pytest.mark.integration
PASSWORD = secrets.token_hex(12)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The broker's address and the CA file that verifies it."""
    home = tmp_path_factory.mktemp("sasl-kafka")
    certificates = make_certificates(home)
    with sasl_ssl_kafka(home, certificates, {"stockledger": PASSWORD}) as address:
        yield address, certificates.ca


@pytest.fixture
async def secure_settings(secure_kafka: tuple[str, Path], database_url: str) -> Settings:
    address, ca = secure_kafka
    settings = Settings(
        kafka_bootstrap_servers=address,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="stockledger",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_cafile=str(ca),
        database_url=SecretStr(database_url),
        topic_prefix=f"s{secrets.token_hex(4)}.",
        consumer_group_prefix=f"g{secrets.token_hex(4)}",
        batch_timeout_ms=20,
    )
    client = client_options(settings)
    await create_topics(client.pop("bootstrap_servers"), settings.topic_prefix, **client)
    return settings


async def _ledger_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger_entries"))
    finally:
        await conn.close()


async def _relayed(settings: Settings, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + LEDGER, **client_options(settings), auto_offset_reset="earliest"
    )
    await start_client(consumer, settings)
    try:
        values: list[Any] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=30_000)
            assert batch, "nothing relayed within 30 s"
            values += [orjson.loads(r.value) for rs in batch.values() for r in rs]
        return values
    finally:
        await consumer.stop()


async def test_an_event_sent_over_sasl_ssl_is_recorded_and_relayed(
    secure_settings: Settings, database_url: str
) -> None:
    topic = secure_settings.topic_prefix + SCANS
    async with running(create_ledger(secure_settings)):
        sender = producer(secure_settings)
        await start_client(sender, secure_settings)
        try:
            await sender.send_and_wait(topic, orjson.dumps(ev.received("MUG", "UK", 2)), b"UK|MUG")
        finally:
            await sender.stop()
        await eventually(lambda: _count_is(database_url, 1))

        c_producer = Producer(librdkafka_options(secure_settings))
        c_producer.produce(topic, orjson.dumps(ev.received("MUG", "UK", 3)), b"UK|MUG")
        assert c_producer.flush(30) == 0
        del c_producer  # disconnected now, not when the broker has gone
        await eventually(lambda: _count_is(database_url, 2))

        relayed = await _relayed(secure_settings, 2)
    assert sorted(e["deltas"]["on_hand"] for e in relayed) == [2, 3]


async def _count_is(database_url: str, n: int) -> bool:
    return await _ledger_rows(database_url) == n


async def test_a_wrong_password_is_refused_with_an_error_that_says_so(
    secure_settings: Settings,
) -> None:
    wrong = secure_settings.model_copy(update={"kafka_sasl_password": SecretStr("not-it")})
    sender = producer(wrong)
    with pytest.raises(BrokerRefusedError, match="invalid credentials") as refused:
        await start_client(sender, wrong)
    await sender.stop()
    assert "SCRAM-SHA-256 as 'stockledger'" in str(refused.value)


def test_a_service_with_a_wrong_password_stops_and_logs_why(
    secure_settings: Settings, tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "KAFKA_BOOTSTRAP_SERVERS": secure_settings.kafka_bootstrap_servers,
        "DATABASE_URL": secure_settings.database_url.get_secret_value(),
        "STOCKLEDGER_TOPIC_PREFIX": secure_settings.topic_prefix,
        "STOCKLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STOCKLEDGER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "STOCKLEDGER_KAFKA_SASL_USERNAME": "stockledger",
        "STOCKLEDGER_KAFKA_SASL_PASSWORD": "wrong-" + PASSWORD,
        "STOCKLEDGER_KAFKA_SSL_CAFILE": secure_settings.kafka_ssl_cafile or "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.ledger"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = done.stderr.decode()
    assert done.returncode == 1, output
    entries = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    [stopped] = [e for e in entries if e["message"] == "the service stopped on an error"]
    assert "BrokerRefusedError" in stopped["error"]
    assert "invalid credentials" in stopped["error"]
    assert PASSWORD not in output
