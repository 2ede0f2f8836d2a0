"""The replenisher against the real servers: one request per crossing, through its lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.replenisher.adapters.store import ReplenisherStore
from services.replenisher.app import create_service as create_replenisher
from services.replenisher.policy import Policy
from shared.settings import Settings
from shared.topics import REPLENISHMENT_REQUESTS

from .. import events as ev
from ..kafka_io import eventually, read_topic
from ..services import running, with_port
from .test_projector import publish

pytestmark = pytest.mark.integration
TOKEN = "test-token"
MIN_MAX = {"policy": "min_max", "min_qty": 10, "max_qty": 30, "lead_time_days": 2}


@pytest.fixture
async def suite(settings: Settings) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = with_port(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    async with (
        running(create_ledger(settings)),
        running(create_projector(settings)),
        running(create_replenisher(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client,
    ):
        yield settings, client


async def requests_of(settings: Settings) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch("SELECT * FROM replenishment_requests ORDER BY seq")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _count_is(settings: Settings, n: int) -> bool:
    return len(await requests_of(settings)) >= n


async def _status_is(settings: Settings, request_id: str, status: str) -> bool:
    return any(
        r["request_id"] == request_id and r["status"] == status for r in await requests_of(settings)
    )


async def put_policy(
    client: httpx.AsyncClient, sku: str, body: dict[str, Any], location: str = "UK"
) -> httpx.Response:
    return await client.put(
        "/v1/policies",
        params={"sku": sku, "location": location},
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def test_one_request_per_crossing_through_confirmation_and_receipt(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = suite
    assert (await put_policy(client, "MUG", MIN_MAX)).status_code == 200
    await publish(settings, [ev.received("MUG", "UK", 30)])
    await publish(settings, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])
    await eventually(lambda: _count_is(settings, 1))
    await asyncio.sleep(1)
    [first] = await requests_of(settings)
    assert (first["qty"], first["kind"], first["status"]) == (25, "purchase", "open")  # 30-25=5

    await publish(settings, [ev.placed("O9", "UK", [("1", "MUG", 1)])])
    await asyncio.sleep(1)
    assert len(await requests_of(settings)) == 1  # still covered by the open request

    rid = first["request_id"]
    await publish(settings, [ev.confirmed(rid, "MUG", "UK", 25)])
    await eventually(lambda: _status_is(settings, rid, "confirmed"))
    await publish(settings, [ev.received("MUG", "UK", 25, reference=rid)])
    await eventually(lambda: _status_is(settings, rid, "received"))

    await publish(settings, [ev.placed("O10", "UK", [("1", "MUG", 25)])])
    await eventually(lambda: _count_is(settings, 2))
    published = await read_topic(
        settings.kafka_bootstrap_servers, settings.topic_prefix + REPLENISHMENT_REQUESTS, 2
    )
    messages = [orjson.loads(r.value) for r in published]
    assert [m["data"]["request_id"] for m in messages] == [
        r["request_id"] for r in await requests_of(settings)
    ]
    assert {m["type"] for m in messages} == {"replenishment.requested"}
    assert messages[0]["data"]["reason"]["policy"] == "min_max"
    listed = (await client.get("/v1/replenishment/requests", params={"status": "closed"})).json()
    assert [r["request_id"] for r in listed["requests"]] == [rid]


async def test_a_location_with_surplus_sends_a_transfer_instead_of_a_purchase(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = suite
    for location in ("UK", "EU", "ROW"):
        assert (await put_policy(client, "MUG", MIN_MAX, location)).status_code == 200
    # EU holds 200, far above its order-up-to level of 30; ROW holds 40, a surplus of 10
    await publish(
        settings,
        [
            ev.received("MUG", "UK", 30),
            ev.received("MUG", "EU", 200),
            ev.received("MUG", "ROW", 40),
        ],
    )
    await publish(settings, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])
    await eventually(lambda: _count_is(settings, 1))
    await asyncio.sleep(1)
    [request] = await requests_of(settings)
    assert (request["location"], request["qty"]) == ("UK", 25)
    assert (request["kind"], request["from_location"]) == ("transfer", "EU")


async def test_policies_need_the_token_and_valid_values(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    _, client = suite
    where = {"sku": "MUG", "location": "UK"}
    assert (await client.put("/v1/policies", params=where, json=MIN_MAX)).status_code == 401
    wrong = await client.put(
        "/v1/policies", params=where, json=MIN_MAX, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    invalid = await put_policy(client, "MUG", {"policy": "min_max", "min_qty": 9, "max_qty": 2})
    assert invalid.status_code == 400
    assert "max_qty" in invalid.json()["detail"]
    unknown = await put_policy(client, "MUG", {"policy": "magic"})
    assert unknown.status_code == 400
    shown = (await client.get("/v1/policies", params=where)).json()
    assert shown["source"] == "default"
    assert (await put_policy(client, "MUG", MIN_MAX)).status_code == 200
    shown = (await client.get("/v1/policies", params=where)).json()
    assert shown["source"] == "set"
    assert shown["figures"]["reorder_point"] == 10
    assert shown["figures"]["order_up_to"] == 30


async def test_a_decision_whose_publish_never_happened_is_published_once_after_restart(
    settings: Settings,
) -> None:
    pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1)
    try:
        await pool.execute(
            "INSERT INTO replenishment_policies (sku, location, policy) VALUES ('MUG', 'UK', $1)",
            Policy(policy="static", reorder_level=10, order_qty=20).model_dump_json(),
        )
        entry = {
            "position": 1,
            "sku": "MUG",
            "location": "UK",
            "kind": "commitment",
            "deltas": {"committed": 3},
            "occurred_at": "2011-07-01T08:00:00Z",
        }
        raised = await ReplenisherStore(pool).apply([entry])  # the decision commits; then a crash
    finally:
        await pool.close()
    assert len(raised) == 1
    for _ in range(2):  # two restarts
        async with running(create_replenisher(settings)):
            await asyncio.sleep(1.5)
    published = await read_topic(
        settings.kafka_bootstrap_servers, settings.topic_prefix + REPLENISHMENT_REQUESTS, 1
    )
    await asyncio.sleep(0.5)
    again = await read_topic(
        settings.kafka_bootstrap_servers, settings.topic_prefix + REPLENISHMENT_REQUESTS, 1
    )
    assert len(published) == len(again) == 1
    assert orjson.loads(published[0].value)["data"]["request_id"] == raised[0]["data"]["request_id"]


async def test_two_replenishers_in_one_group_raise_no_duplicate(settings: Settings) -> None:
    settings = with_port(settings)
    pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1)
    try:
        for n in range(20):
            await pool.execute(
                "INSERT INTO replenishment_policies (sku, location, policy) VALUES ($1, 'UK', $2)",
                f"SKU-{n}",
                orjson.dumps(MIN_MAX).decode(),
            )
    finally:
        await pool.close()
    events = [ev.received(f"SKU-{n}", "UK", 30) for n in range(20)]
    events += [ev.placed(f"O{n}", "UK", [("1", f"SKU-{n}", 22)]) for n in range(20)]
    async with (
        running(create_ledger(settings)),
        running(create_replenisher(settings)),
        running(create_replenisher(settings)),
    ):
        await publish(settings, events)
        await eventually(lambda: _count_is(settings, 20))
        await asyncio.sleep(1.5)
    requests = await requests_of(settings)
    assert sorted(r["sku"] for r in requests) == sorted(f"SKU-{n}" for n in range(20))
    assert all(r["qty"] == 22 for r in requests)


async def test_a_policy_body_over_64_kib_is_refused_declared_or_streamed(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    _, client = suite
    where = {"sku": "MUG", "location": "UK"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    declared = await client.put("/v1/policies", params=where, content=b" " * 1024**2, headers=auth)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(3):
            yield b" " * 32 * 1024

    streamed = await client.put("/v1/policies", params=where, content=chunks(), headers=auth)
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "too_large"
    assert (await put_policy(client, "MUG", MIN_MAX)).status_code == 200


async def test_a_request_cancelled_before_any_confirmation_is_closed(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = suite
    assert (await put_policy(client, "MUG", MIN_MAX)).status_code == 200
    await publish(settings, [ev.received("MUG", "UK", 30)])
    await publish(settings, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])
    await eventually(lambda: _count_is(settings, 1))
    [request] = await requests_of(settings)
    await publish(settings, [ev.request_cancelled(request["request_id"])])
    await eventually(lambda: _status_is(settings, request["request_id"], "cancelled"))


async def test_a_transfer_answering_a_request_confirms_it_and_its_receipt_receives_it(
    suite: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = suite
    for location in ("UK", "EU"):
        assert (await put_policy(client, "MUG", MIN_MAX, location)).status_code == 200
    await publish(settings, [ev.received("MUG", "UK", 30), ev.received("MUG", "EU", 200)])
    await publish(settings, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])
    await eventually(lambda: _count_is(settings, 1))
    [request] = await requests_of(settings)
    rid = request["request_id"]
    assert (request["kind"], request["from_location"], request["qty"]) == ("transfer", "EU", 25)
    # sent in two scans under the request's id: confirmed, not open (its units are incoming)
    await publish(settings, [ev.transferred("MUG", "EU", "UK", 20, rid)])
    await eventually(lambda: _status_is(settings, rid, "confirmed"))
    await publish(settings, [ev.transferred("MUG", "EU", "UK", 5, rid)])
    await publish(settings, [ev.received("MUG", "UK", 25, reference=rid)])
    await eventually(lambda: _status_is(settings, rid, "received"))
    [request] = await requests_of(settings)
    assert (request["confirmed_qty"], request["received_qty"]) == (25, 25)


async def test_between_sources_of_equal_surplus_the_first_location_by_name_sends(
    database_url: str,
) -> None:
    """Whatever order PostgreSQL reads the sources in: ROW's row is written first here and
    index scans and hash joins are off, so a scan in storage order meets ROW first (with
    thousands of items, the plan, and so the order, varied from run to run)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=2,
        server_settings={
            "enable_indexscan": "off",
            "enable_bitmapscan": "off",
            "enable_hashjoin": "off",
            "enable_mergejoin": "off",
        },
    )
    try:
        await pool.executemany(
            "INSERT INTO replenishment_policies (sku, location, policy) VALUES ($1, $2, $3)",
            [("MUG", location, orjson.dumps(MIN_MAX).decode()) for location in ("UK", "EU", "ROW")],
        )
        store = ReplenisherStore(pool)
        position = 0

        def entry(location: str, kind: str, **deltas: int) -> dict[str, Any]:
            nonlocal position
            position += 1
            return {
                "position": position,
                "sku": "MUG",
                "location": location,
                "kind": kind,
                "deltas": deltas,
                "occurred_at": "2026-01-05T10:00:00Z",
            }

        for location, units in (("ROW", 100), ("EU", 100), ("UK", 30)):  # rows in this order
            assert await store.apply([entry(location, "receipt", on_hand=units)]) == []
        [raised] = await store.apply([entry("UK", "commitment", committed=25)])
    finally:
        await pool.close()
    assert (raised["data"]["kind"], raised["data"]["from_location"]) == ("transfer", "EU")


async def test_a_transfer_takes_surplus_of_its_own_sku_only(database_url: str) -> None:
    """Two skus short at UK in one batch, each with a surplus at EU: both are transfers (a
    transfer of one sku leaves the other sku's surplus at the same location untouched)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.executemany(
            "INSERT INTO replenishment_policies (sku, location, policy) VALUES ($1, $2, $3)",
            [
                (sku, location, orjson.dumps(MIN_MAX).decode())
                for sku in ("MUG", "JUG")
                for location in ("UK", "EU")
            ],
        )
        store = ReplenisherStore(pool)
        position = 0

        def entry(sku: str, location: str, kind: str, **deltas: int) -> dict[str, Any]:
            nonlocal position
            position += 1
            return {
                "position": position,
                "sku": sku,
                "location": location,
                "kind": kind,
                "deltas": deltas,
                "occurred_at": "2026-01-05T10:00:00Z",
            }

        # EU: 60 of each, a surplus of 30 over its order-up-to level of 30
        opening = [
            entry(sku, loc, "receipt", on_hand=n)
            for sku in ("MUG", "JUG")
            for loc, n in (("UK", 30), ("EU", 60))
        ]
        assert await store.apply(opening) == []
        raised = await store.apply(
            [
                entry("MUG", "UK", "commitment", committed=25),
                entry("JUG", "UK", "commitment", committed=25),
            ]
        )
    finally:
        await pool.close()
    assert sorted(
        (r["data"]["sku"], r["data"]["kind"], r["data"].get("from_location"), r["data"]["qty"])
        for r in raised
    ) == [("JUG", "transfer", "EU", 25), ("MUG", "transfer", "EU", 25)]
