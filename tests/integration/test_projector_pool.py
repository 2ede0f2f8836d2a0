"""The projector consumer's pool against the real PostgreSQL: a released connection is not reset
(no round trip per batch), and an open transaction still ends with it."""

from __future__ import annotations

import pytest

from services.projector.app import consumer_pool
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_released_connection_keeps_its_session(settings: Settings) -> None:
    pool = await consumer_pool(settings.model_copy(update={"db_pool_size": 1}))
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'projector-kept'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            # asyncpg's default reset (RESET ALL among others) would have put it back
            assert await conn.fetchval("SHOW application_name") == "projector-kept"
    finally:
        await pool.close()


async def test_released_connection_ends_an_open_transaction(settings: Settings) -> None:
    pool = await consumer_pool(settings.model_copy(update={"db_pool_size": 1}))
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE pool_left_open (x int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pool_left_open')") is None
    finally:
        await pool.close()
