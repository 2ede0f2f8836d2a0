"""Fixtures for tests against the real Kafka broker and PostgreSQL server.

The servers are the ones the Makefile starts (``deploy/scripts/stack.sh infra``), started once per
run when they are not running yet, or the ones named by ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL``. Tests are isolated from each other by a fresh database per test (cloned from a
migrated template) and a unique topic prefix and consumer group per test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.migrate import migrate
from shared.roles import ROLES, login_url, set_password
from shared.settings import Settings
from shared.topics import create_topics, topic_specs

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "stockledger_test_template"


@dataclass(frozen=True)
class Servers:
    kafka: str
    database_url: str

    def url_for(self, database: str) -> str:
        base, _, _ = self.database_url.rpartition("/")
        return f"{base}/{database}"


def local_kafka() -> str:
    """The broker deploy/scripts/kafka.sh runs (KAFKA_PORT moves it)."""
    return f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"


def local_database() -> str:
    """The server deploy/scripts/postgres.sh runs (PG_PORT moves it)."""
    port = os.environ.get("PG_PORT", "5433")
    return f"postgresql://stockledger:stockledger@127.0.0.1:{port}/stockledger"


def _running(script: str) -> bool:
    return subprocess.run([ROOT / "deploy/scripts" / script, "status"], check=False).returncode == 0


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("DATABASE_URL")
    started = False
    if not (kafka and database_url):
        started = not (_running("kafka.sh") and _running("postgres.sh"))
        subprocess.run([ROOT / "deploy/scripts/kafka.sh", "start"], check=True)
        subprocess.run([ROOT / "deploy/scripts/postgres.sh", "start"], check=True)
    yield Servers(kafka=kafka or local_kafka(), database_url=database_url or local_database())
    if started and os.environ.get("STOCKLEDGER_TEST_KEEP_SERVERS") != "1":
        subprocess.run([ROOT / "deploy/scripts/kafka.sh", "stop"], check=False)
        subprocess.run([ROOT / "deploy/scripts/postgres.sh", "stop"], check=False)


@pytest.fixture(scope="session")
async def template_database(servers: Servers) -> str:
    """A database with every migration applied, cloned by each test that needs one."""
    admin = await asyncpg.connect(servers.url_for("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    await migrate(servers.url_for(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(servers.url_for("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await admin.close()
    yield servers.url_for(name)
    admin = await asyncpg.connect(servers.url_for("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def topic_prefix(servers: Servers) -> AsyncIterator[str]:
    """Every contract topic, created under a prefix unique to this test, deleted afterwards."""
    from aiokafka.admin import AIOKafkaAdminClient

    prefix = f"t{uuid.uuid4().hex[:10]}."
    await create_topics(servers.kafka, prefix)
    yield prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka)
    await admin.start()
    try:
        await admin.delete_topics([s.name for s in topic_specs(prefix)])
    finally:
        await admin.close()


@pytest.fixture
def settings(servers: Servers, database_url: str, topic_prefix: str) -> Settings:
    """Settings for a service under test: its own database, topics and consumer groups."""
    return Settings(
        kafka_bootstrap_servers=servers.kafka,
        database_url=database_url,
        topic_prefix=topic_prefix,
        consumer_group_prefix=f"{topic_prefix}stockledger",
        batch_timeout_ms=20,
    )


@pytest.fixture
async def role_urls(database_url: str) -> AsyncIterator[dict[str, str]]:
    """Per service, a URL of the test database for a login role that is a member of the
    service's role (the way an operator grants a role to a login of their own)."""
    tag = uuid.uuid4().hex[:8]
    logins = {service: f"t{tag}_{service}" for service in ROLES}
    # characters a URL must escape, so that the escaping is exercised too
    passwords = {service: f"p@ss:{secrets.token_urlsafe(12)}" for service in ROLES}
    owner = await asyncpg.connect(database_url)
    try:
        for service, login in logins.items():
            await owner.execute(f"CREATE ROLE {login} IN ROLE {ROLES[service]}")
            await set_password(owner, login, passwords[service])
        yield {s: login_url(database_url, login, passwords[s]) for s, login in logins.items()}
    finally:
        for login in logins.values():
            await owner.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", login
            )
            await owner.execute(f"DROP ROLE IF EXISTS {login}")
        await owner.close()
