"""The gateway's PostgreSQL tables: webhook endpoints, deliveries and their attempts, and the
replenishment requests it has seen. It reads and writes no stock table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from ..domain.deliveries import Endpoint, Message

DELIVERY_STATUSES = ("pending", "delivered", "failed")
# Leases and attempts commit without waiting for the disk: should PostgreSQL lose the last of them
# in a crash, a delivery is only attempted again (at least once holds), and per-attempt commits no
# longer wait on fsync. Deliveries themselves are recorded durably before the offsets commit.
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
CLAIM = """WITH due AS (
      SELECT d.seq FROM webhook_deliveries d
       WHERE d.status = 'pending' AND d.next_attempt_at <= now()
         AND d.endpoint <> ALL($3::text[])
         AND NOT EXISTS (
             SELECT 1 FROM webhook_deliveries e
              WHERE e.endpoint = d.endpoint AND e.item_key = d.item_key
                AND e.status = 'pending' AND e.seq < d.seq)
       ORDER BY d.seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
    UPDATE webhook_deliveries d
       SET next_attempt_at = now() + make_interval(secs => $2),
           attempts = d.attempts + 1
      FROM due, webhook_endpoints w
     WHERE d.seq = due.seq AND w.name = d.endpoint
 RETURNING d.seq, d.endpoint, d.message_id, d.body, d.attempts, d.created_at,
           w.url, w.secret"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken for one attempt (its lease keeps others from taking it meanwhile)."""

    seq: int
    endpoint: str
    message_id: str
    body: bytes
    attempt: int
    created_at: datetime
    url: str
    secret: str


class GatewayStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ------------------------------------------------------------------ endpoints
    async def endpoints(self) -> list[Endpoint]:
        rows = await self.pool.fetch(
            "SELECT name, url, secret, locations, types FROM webhook_endpoints ORDER BY name"
        )
        return [
            Endpoint(
                r["name"],
                r["url"],
                r["secret"],
                frozenset(r["locations"]) if r["locations"] is not None else None,
                frozenset(r["types"]),
            )
            for r in rows
        ]

    async def put_endpoint(self, endpoint: Endpoint) -> bool:
        """Register or replace an endpoint; True when it is new."""
        locations = sorted(endpoint.locations) if endpoint.locations is not None else None
        created: bool = await self.pool.fetchval(
            "INSERT INTO webhook_endpoints (name, url, secret, locations, types)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET url = $2, secret = $3,"
            " locations = $4, types = $5, updated_at = now() RETURNING (xmax = 0)",
            endpoint.name,
            endpoint.url,
            endpoint.secret,
            locations,
            sorted(endpoint.types),
        )
        return created

    async def delete_endpoint(self, name: str) -> bool:
        """Remove an endpoint; its pending deliveries are given up."""
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                "DELETE FROM webhook_endpoints WHERE name = $1 RETURNING true", name
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint removed'"
                " WHERE endpoint = $1 AND status = 'pending'",
                name,
            )
        return bool(deleted)

    # ------------------------------------------------------------------ intake
    async def enqueue(
        self,
        deliveries: Sequence[tuple[str, Message]],
        requests: Sequence[tuple[str, str, str]],
    ) -> int:
        """Record the deliveries (endpoint, message) in order, and the requests seen (request_id,
        sku, location), in one transaction; a delivery recorded before is left as it is."""
        async with self.pool.acquire() as conn, conn.transaction():
            if requests:
                await conn.execute(
                    "INSERT INTO gateway_requests (request_id, sku, location)"
                    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
                    " ON CONFLICT DO NOTHING",
                    [r[0] for r in requests],
                    [r[1] for r in requests],
                    [r[2] for r in requests],
                )
            if not deliveries:
                return 0
            result: str = await conn.execute(
                "INSERT INTO webhook_deliveries (endpoint, message_id, type, item_key, body)"
                " SELECT endpoint, message_id, type, item_key, body"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])"
                " WITH ORDINALITY AS d(endpoint, message_id, type, item_key, body, n)"
                " ORDER BY n ON CONFLICT (endpoint, message_id) DO NOTHING",
                [d[0] for d in deliveries],
                [d[1].id for d in deliveries],
                [d[1].type for d in deliveries],
                [d[1].key for d in deliveries],
                [d[1].body for d in deliveries],
            )
        return int(result.rsplit(" ", 1)[-1])

    # ------------------------------------------------------------------ sending
    async def claim(self, limit: int, lease_s: float, busy: Sequence[str]) -> list[Claimed]:
        """Due deliveries that are first in line for their endpoint and item, of endpoints not in
        ``busy``; each is leased for ``lease_s`` (should this process die mid-attempt, another
        attempt follows once the lease has passed)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(ASYNC_COMMIT)
            rows = await conn.fetch(CLAIM, limit, lease_s, list(busy))
        return sorted((Claimed(*r) for r in rows), key=lambda c: c.seq)

    async def record(
        self,
        claimed: Claimed,
        at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
        outcome: str,
        retry_in_s: float | None,
    ) -> None:
        """Record one attempt, and the delivery's new state: ``delivered``, ``failed``, or still
        ``pending`` and tried again in ``retry_in_s``."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(ASYNC_COMMIT)
            await conn.execute(  # the attempt and the state, or neither
                "WITH attempt AS (INSERT INTO webhook_attempts"
                "   (delivery_seq, attempt, at, status_code, error, duration_ms)"
                "   VALUES ($1, $7, $3, $4, $5, $8))"
                " UPDATE webhook_deliveries SET status = $2, last_attempt_at = $3,"
                " last_status = $4, last_error = $5,"
                " delivered_at = CASE WHEN $2 = 'delivered' THEN now() END,"
                " next_attempt_at = CASE WHEN $6::float8 IS NULL THEN next_attempt_at"
                "   ELSE now() + make_interval(secs => $6::float8) END"
                " WHERE seq = $1 AND status = 'pending'",
                claimed.seq,
                outcome,
                at,
                status_code,
                error,
                retry_in_s,
                claimed.attempt,
                duration_ms,
            )

    # ------------------------------------------------------------------ reading
    async def deliveries(
        self, status: str | None, endpoint: str | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT seq, endpoint, message_id, type, item_key, status, attempts, created_at,"
            " last_attempt_at, delivered_at, next_attempt_at, last_status, last_error"
            " FROM webhook_deliveries WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR endpoint = $2) AND seq > $3 ORDER BY seq LIMIT $4",
            status,
            endpoint,
            after,
            limit,
        )
        return [_delivery(r) for r in rows]

    async def backlog(self) -> tuple[int, float]:
        """Pending deliveries, and the age in seconds of the oldest that has failed an attempt
        (0 when none has)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS pending, coalesce(extract(epoch FROM now()"
            "   - min(created_at) FILTER (WHERE last_attempt_at IS NOT NULL)), 0)::float8"
            "   AS failing"
            " FROM webhook_deliveries WHERE status = 'pending'"
        )
        assert row is not None
        return int(row["pending"]), float(row["failing"])

    # ------------------------------------------------------------------ requests
    async def request_item(self, request_id: str) -> tuple[str, str] | None:
        row = await self.pool.fetchrow(
            "SELECT sku, location FROM gateway_requests WHERE request_id = $1", request_id
        )
        return (row["sku"], row["location"]) if row is not None else None

    async def first_update(self, request_id: str, kind: str, event: dict[str, Any]) -> Any:
        """The event first recorded for this request and kind: ``event`` when it is the first."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO gateway_request_updates (request_id, kind, event)"
                " VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
                request_id,
                kind,
                orjson.dumps(event).decode(),
            )
            stored = await conn.fetchval(
                "SELECT event::text FROM gateway_request_updates"
                " WHERE request_id = $1 AND kind = $2",
                request_id,
                kind,
            )
        return orjson.loads(stored)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _delivery(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "seq": r["seq"],
        "endpoint": r["endpoint"],
        "message_id": r["message_id"],
        "type": r["type"],
        "key": r["item_key"],
        "status": r["status"],
        "attempts": r["attempts"],
        "created_at": _time(r["created_at"]),
        "last_attempt_at": _time(r["last_attempt_at"]),
        "delivered_at": _time(r["delivered_at"]),
        "next_attempt_at": _time(r["next_attempt_at"]) if r["status"] == "pending" else None,
        "last_status": r["last_status"],
        "last_error": r["last_error"],
    }
