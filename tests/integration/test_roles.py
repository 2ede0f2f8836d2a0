"""Each service's PostgreSQL role is refused what that service must not do, and the three
services work end to end, each connected with its own role."""

from __future__ import annotations

import asyncpg
import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.replenisher.app import create_service as create_replenisher
from shared.roles import ROLES
from shared.settings import Settings
from shared.topics import LEDGER, REPLENISHMENT_REQUESTS

from .. import events as ev
from ..kafka_io import eventually, read_topic
from ..services import running, with_port
from .test_projector import publish

pytestmark = pytest.mark.integration

ENTRY = (
    "INSERT INTO ledger_entries (entry_id, source_event_id, line_no, sku, location, kind,"
    " occurred_at, source_type) VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'MUG', 'UK',"
    " 'received', now(), 'scan.received')"
)
LEVEL = "INSERT INTO stock_levels (sku, location) VALUES ('MUG', 'UK')"
REFUSAL = (
    "WITH p AS (INSERT INTO processed_events (event_id, event_type, topic)"
    " VALUES (gen_random_uuid(), 'scan.inspected', 'inventory.scans.v1') RETURNING event_id)"
    " INSERT INTO ledger_refusals SELECT event_id, 'schema', 'too many' FROM p"
)
POLICY = "INSERT INTO replenishment_policies (sku, location, policy) VALUES ('MUG', 'UK', '{}')"

# (service, statement, allowed): what each role may and may not do.
PRIVILEGES = [
    ("ledger", ENTRY, True),
    ("ledger", "SELECT count(*) FROM ledger_entries", True),
    ("ledger", "UPDATE ledger_entries SET on_hand = 0", False),
    ("ledger", "DELETE FROM ledger_entries", False),
    ("ledger", "TRUNCATE ledger_entries", False),
    ("ledger", "DELETE FROM processed_events", False),
    ("ledger", "INSERT INTO ledger_balances (sku, location) VALUES ('MUG', 'UK')", True),
    ("ledger", LEVEL, False),
    ("ledger", "SELECT request_id, sku, location FROM replenishment_requests", True),
    ("ledger", "SELECT * FROM replenishment_requests", False),
    ("ledger", "UPDATE replenishment_requests SET status = 'cancelled'", False),
    ("ledger", "SELECT count(*) FROM ledger_refusals", True),
    ("ledger", REFUSAL, True),
    ("ledger", "DELETE FROM ledger_refusals", False),
    ("ledger", "UPDATE ledger_refusals SET reason = 'x'", False),
    ("ledger", POLICY, False),
    ("projector", LEVEL, True),
    ("projector", "UPDATE stock_levels SET on_hand = 1", True),
    ("projector", "SELECT coalesce(max(position), 0) FROM ledger_entries", True),
    ("projector", "SELECT sku FROM ledger_entries", False),
    ("projector", ENTRY, False),
    ("projector", "DELETE FROM stock_levels", False),
    ("projector", POLICY, False),
    ("api", "SELECT * FROM stock_levels", True),
    ("api", "SELECT * FROM ledger_entries", True),
    ("api", "SELECT * FROM replenishment_requests", True),
    ("api", POLICY, True),
    ("api", LEVEL, False),
    ("api", "UPDATE stock_levels SET on_hand = 1", False),
    ("api", ENTRY, False),
    ("api", "DELETE FROM replenishment_policies", False),
    ("api", "SELECT * FROM processed_events", False),
    ("replenisher", "INSERT INTO replenisher_items (sku, location) VALUES ('MUG', 'UK')", True),
    ("replenisher", "DELETE FROM reorder_points", True),
    ("replenisher", "SELECT * FROM replenishment_policies", True),
    ("replenisher", POLICY, False),
    ("replenisher", LEVEL, False),
    ("replenisher", "SELECT * FROM ledger_entries", False),
    *((service, "CREATE TABLE scratch (x int)", False) for service in ROLES),
]


@pytest.mark.parametrize(("service", "statement", "allowed"), PRIVILEGES)
async def test_each_role_may_do_only_what_its_service_does(
    role_urls: dict[str, str], service: str, statement: str, allowed: bool
) -> None:
    conn = await asyncpg.connect(role_urls[service])
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            if allowed:
                await conn.execute(statement)
            else:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(statement)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def _requests(owner_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(owner_url)
    try:
        return await conn.fetch("SELECT * FROM replenishment_requests ORDER BY seq")
    finally:
        await conn.close()


async def test_the_services_run_end_to_end_each_with_its_own_role(
    settings: Settings, role_urls: dict[str, str]
) -> None:
    owner_url = settings.database_url.get_secret_value()
    common = with_port(settings).model_copy(
        update={"api_token": SecretStr("t0ken-for-roles"), "forecast_interval_s": 0.3}
    )

    def as_role(service: str, **more: SecretStr) -> Settings:
        return common.model_copy(update={"database_url": SecretStr(role_urls[service]), **more})

    api = SecretStr(role_urls["api"])
    async with (
        running(create_ledger(as_role("ledger"))),
        running(create_projector(as_role("projector", api_database_url=api))),
        running(create_replenisher(as_role("replenisher"))),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{common.http_port}") as client,
    ):
        put = await client.put(
            "/v1/policies",
            params={"sku": "MUG", "location": "UK"},
            json={"policy": "min_max", "min_qty": 10, "max_qty": 30, "lead_time_days": 2},
            headers={"Authorization": "Bearer t0ken-for-roles"},
        )
        assert put.status_code == 200, put.text
        await publish(common, [ev.received("MUG", "UK", 30)])
        await publish(common, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])

        async def level_shown() -> bool:
            answer = await client.get("/v1/stock", params={"sku": "MUG", "location": "UK"})
            return answer.status_code == 200 and answer.json()["available"] == 5

        await eventually(level_shown)
        await eventually(lambda: _has_requests(owner_url))
        history = await client.get("/v1/stock/ledger", params={"sku": "MUG", "location": "UK"})
        assert len(history.json()["entries"]) == 6
        relayed = await read_topic(common.kafka_bootstrap_servers, common.topic_prefix + LEDGER, 6)
        assert len(relayed) == 6
        [request] = await read_topic(
            common.kafka_bootstrap_servers, common.topic_prefix + REPLENISHMENT_REQUESTS, 1
        )
        assert orjson.loads(request.value)["data"]["qty"] == 25
        await eventually(lambda: _has_reorder_point(owner_url))  # the forecast pass's


async def _has_requests(owner_url: str) -> bool:
    return len(await _requests(owner_url)) == 1


async def _has_reorder_point(owner_url: str) -> bool:
    conn = await asyncpg.connect(owner_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM reorder_points"))
    finally:
        await conn.close()
