"""The suite on a PostgreSQL server that admits TLS clients only: the migrations and the ledger
run over verified TLS when the settings ask for it; without TLS, or trusting another CA, the
connection is refused."""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from services.ledger.app import create_service as create_ledger
from shared.migrate import migrate
from shared.settings import Settings

from .. import events as ev
from ..conftest import Servers
from ..kafka_io import eventually
from ..secure_servers import Certificates, make_certificates, tls_only_postgres
from ..services import running
from .test_projector import publish

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[str]:
    with tls_only_postgres(certificates, secrets.token_hex(12)) as url:
        yield url


def _tls(settings: Settings, url: str, certificates: Certificates) -> Settings:
    return settings.model_copy(
        update={
            "database_url": SecretStr(url),
            "database_sslmode": "verify-full",
            "database_sslrootcert": str(certificates.ca),
        }
    )


async def test_the_ledger_records_events_over_verified_tls(
    servers: Servers, topic_prefix: str, tls_server: str, certificates: Certificates
) -> None:
    settings = _tls(
        Settings(
            kafka_bootstrap_servers=servers.kafka,
            topic_prefix=topic_prefix,
            consumer_group_prefix=f"{topic_prefix}stockledger",
            batch_timeout_ms=20,
        ),
        tls_server,
        certificates,
    )
    assert len(await migrate(settings.database_dsn())) >= 4
    async with running(create_ledger(settings)):
        await publish(settings, [ev.received("MUG", "UK", 4)])
        conn = await asyncpg.connect(settings.database_dsn())
        try:

            async def recorded() -> bool:
                return int(await conn.fetchval("SELECT count(*) FROM ledger_entries")) == 1

            await eventually(recorded)
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            encrypted = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.backend_type = 'client backend' AND s.ssl"
            )
            plain = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.backend_type = 'client backend' AND NOT s.ssl"
            )
            assert encrypted >= 3  # the ledger's pool, its relay, and this connection
            assert plain == 0
        finally:
            await conn.close()


async def test_a_client_without_tls_is_refused(tls_server: str) -> None:
    plain = Settings(database_url=tls_server, database_sslmode="disable")
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain.database_dsn())


async def test_a_server_certificate_from_another_ca_is_refused(
    tls_server: str, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path)
    settings = _tls(Settings(), tls_server, other)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(settings.database_dsn())
