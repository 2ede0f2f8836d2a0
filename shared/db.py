"""PostgreSQL plumbing shared by the services."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
"""A connection of its own or one borrowed from a pool: both take the same calls."""


async def create_pool(database_url: str, size: int) -> asyncpg.Pool[Any]:
    return await asyncpg.create_pool(database_url, min_size=1, max_size=size)
