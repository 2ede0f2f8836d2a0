"""Failures that must neither stop the flow nor lose anything, against the real broker and database:
an event that the append cannot take, dead letters over the topic's size limit, levels published
late after a rebalance, and a relay host that dies holding the leader's lock."""

from __future__ import annotations

import pytest

from services.ledger import app as ledger_app
from services.ledger.adapters.relay import Relay
from services.ledger.app import LedgerService
from shared.db import Connection
from shared.settings import Settings

from ..kafka_io import eventually
from ..services import running

pytestmark = pytest.mark.integration

KEEPALIVES = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")


async def test_the_relay_leader_s_connection_carries_tcp_keepalives(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leader's session advisory lock is released only when the server drops its connection:
    # after a host dies, the keepalives decide how soon another relay takes over.
    shown: dict[str, str] = {}

    class Probe(Relay):
        async def resume(self, conn: Connection) -> None:
            for name in (*KEEPALIVES, "tcp_user_timeout"):
                shown[name] = await conn.fetchval(f"SHOW {name}")
            await super().resume(conn)

    monkeypatch.setattr(ledger_app, "Relay", Probe)
    configured = Settings(
        **{
            **settings.model_dump(),
            "database_url": settings.database_url.get_secret_value(),
            "db_keepalives_idle_s": 7,
            "db_keepalives_interval_s": 3,
            "db_keepalives_count": 4,
        }
    )
    async with running(LedgerService(configured, ingest=False, relay=True)):
        await eventually(lambda: _true(bool(shown)), seconds=15)
    assert shown == {
        "tcp_keepalives_idle": "7",
        "tcp_keepalives_interval": "3",
        "tcp_keepalives_count": "4",
        "tcp_user_timeout": "19000",  # idle + interval x count: unacknowledged data gives up too
    }


async def _true(value: bool) -> bool:
    return value
