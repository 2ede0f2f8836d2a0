"""Publishing from a PostgreSQL table to Kafka: one elected publisher, woken by NOTIFY.

A subclass says what to publish (``publish_once``) and where it left off (``resume``). The
publisher holds a session advisory lock, so among several instances exactly one publishes;
another takes over when its connection goes. It polls too, so a lost notification only delays.

The lock lives as long as the server keeps the leader's connection. ``session_settings`` give
that connection the server's TCP keepalives (``Settings.leader_session_settings``): when the
leader's host dies or drops off the network, the server notices within seconds and ends the
session, which releases the lock, instead of waiting out the operating system's two hours.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from .db import Connection
from .runner import sleep_unless

log = logging.getLogger(__name__)


class OutboxPublisher:
    lock_id: int
    channel: str
    batch_size: int = 5000

    def __init__(self, database_url: str, session_settings: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.session_settings = session_settings or {}
        self.leader = False

    async def resume(self, conn: Connection) -> None:
        """Load where publishing left off (called once elected)."""

    async def publish_once(self, conn: Connection) -> int:
        """Publish the next batch; returns how many messages went out."""
        raise NotImplementedError

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self._serve(stopping)
            except Exception:  # the database or the broker went away: start over, skip nothing
                log.exception("%s publisher failed; starting over", self.channel)
                self.leader = False
                await sleep_unless(stopping, 1.0)

    async def _serve(self, stopping: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.database_url, server_settings=self.session_settings)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_id):
                if await sleep_unless(stopping, 1.0):
                    return
            self.leader = True
            woken = asyncio.Event()
            await conn.add_listener(self.channel, lambda *_: woken.set())
            await self.resume(conn)
            while not stopping.is_set():
                woken.clear()
                if await self.publish_once(conn) < self.batch_size:
                    await _wait_either(woken, stopping, seconds=0.5)
        finally:
            self.leader = False
            await conn.close()


async def _wait_either(a: asyncio.Event, b: asyncio.Event, seconds: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
