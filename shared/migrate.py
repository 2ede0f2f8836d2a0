"""Applies the SQL migrations under deploy/postgres/migrations in name order, once each.

Each file runs in its own transaction under an advisory lock and is recorded in
``schema_migrations``, so running this twice, or from two processes at once, is safe.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "postgres" / "migrations"
MIGRATION_LOCK = 7_300_001


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("*.sql"))


async def migrate(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; returns the versions applied now."""
    conn = await asyncpg.connect(database_url)
    applied_now: list[str] = []
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for path in migration_files(directory):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                done = await conn.fetchval(
                    "SELECT 1 FROM schema_migrations WHERE version = $1", path.stem
                )
                if done:
                    continue
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.stem)
                applied_now.append(path.stem)
    finally:
        await conn.close()
    return applied_now


def main() -> None:
    from shared.settings import Settings

    settings = Settings()
    applied = asyncio.run(migrate(settings.database_dsn()))
    total = len(migration_files())
    print(f"migrations: {len(applied)} applied, {total - len(applied)} already there")


if __name__ == "__main__":
    main()
