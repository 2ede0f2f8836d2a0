"""The ``lines`` policy in the replenisher's store, in event time, against PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.replenisher import planning
from services.replenisher.adapters import store as store_module
from services.replenisher.adapters.store import ReplenisherStore
from services.replenisher.app import (
    EventTimeReplay,
    create_service,
    default_policy,
    line_settings,
)
from services.replenisher.lines import LinePlanner
from shared.settings import Settings
from shared.topics import ORDERS, SCANS
from tests import events as ev
from tests.kafka_io import eventually, produce_events
from tests.services import running, with_port

TOKEN = "lines-t0ken"
START = datetime(2011, 3, 1, 9, tzinfo=UTC)
TABLES = (
    "replenisher_items, demand_daily, demand_lines, replenishment_requests,"
    " replenishment_plans, replenishment_planner, replenishment_forecasts, reorder_points"
)


def history(days: int = 45, seed: int = 7) -> list[dict[str, Any]]:
    """Ledger entries as the relay publishes them: opening stock, then order lines of varied
    sizes on most days for four items (a fifth appears on day 20), each shipped that day."""
    rng = random.Random(seed)
    entries: list[dict[str, Any]] = []
    position = 0

    def entry(sku: str, location: str, kind: str, at: datetime, **deltas: int) -> None:
        nonlocal position
        position += 1
        entries.append(
            {
                "position": position,
                "entry_id": f"e{position}",
                "sku": sku,
                "location": location,
                "kind": kind,
                "deltas": deltas,
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "recorded_at": at.isoformat().replace("+00:00", "Z"),
                "source_event_id": f"s{position}",
                "source_type": "test",
            }
        )

    items = [("MUG", "UK"), ("MUG", "EU"), ("JUG", "UK"), ("BIG", "UK")]
    for sku, location in items:
        entry(sku, location, "receipt", START - timedelta(hours=1), on_hand=40)
    for day in range(days):
        at = START + timedelta(days=day)
        today = items + ([("NEW", "UK")] if day >= 20 else [])
        for sku, location in today:
            if rng.random() < 0.35:
                continue
            qty = 200 if sku == "BIG" and rng.random() < 0.2 else rng.choice((1, 1, 2, 3, 6))
            entry(sku, location, "commitment", at, committed=qty)
            entry(sku, location, "shipment", at + timedelta(hours=3), on_hand=-qty, committed=-qty)
    return entries


async def replay(
    url: str, settings: Settings, entries: list[dict[str, Any]], batch: int
) -> list[dict[str, Any]]:
    """The entries through the store in batches of ``batch``, planning in event time; the
    requests raised, with the planning passes' days."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        await pool.execute(f"TRUNCATE {TABLES}")
        store = ReplenisherStore(pool, default_policy(settings), line_settings(settings))
        replay = EventTimeReplay(pool, settings, store)
        for at in range(0, len(entries), batch):
            assert await replay.apply(entries[at : at + batch])
        rows = await pool.fetch(
            "SELECT request_id, event_id, sku, location, qty, kind, needed_by, reason"
            " FROM replenishment_requests ORDER BY request_id"
        )
        return [dict(r) for r in rows]
    finally:
        await pool.close()


async def test_the_same_history_in_any_batch_sizes_raises_the_same_requests(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url)
    entries = history()
    one_go = await replay(database_url, settings, entries, 10_000)
    small = await replay(database_url, settings, entries, 7)
    singles = await replay(database_url, settings, entries, 1)
    assert one_go, "the history must raise requests"
    assert one_go == small == singles
    assert all('"policy": "lines"' in r["reason"] for r in one_go)
    # needed_by follows event time (the history's 2011), not the clock
    assert all(r["needed_by"].year == 2011 for r in one_go)


async def test_plans_follow_event_time_and_a_new_item_is_planned_from_its_first_line(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url)
    entries = history()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        store = ReplenisherStore(pool, default_policy(settings), line_settings(settings))
        replay = EventTimeReplay(pool, settings, store)
        passes = replay.passes
        first_new = next(i for i, e in enumerate(entries) if e["sku"] == "NEW")
        assert await replay.apply(entries[: first_new + 1])
        new = await pool.fetchrow(
            "SELECT reorder_point, order_up_to, planned_for FROM replenishment_plans"
            " WHERE sku = 'NEW' AND location = 'UK'"
        )
        assert new is not None  # planned at its first line, not at the next pass
        assert new["planned_for"] == date.fromisoformat(entries[first_new]["occurred_at"][:10])
        assert new["order_up_to"] > new["reorder_point"]
        assert await replay.apply(entries[first_new + 1 :])
    finally:
        await pool.close()
    # the first day once over, then each day whose ordinal is a multiple
    # of 7 once a later day has been seen
    assert passes[0] == date(2011, 3, 1)
    assert all(d.toordinal() % 7 == 0 for d in passes[1:])
    assert passes == sorted(set(passes))
    assert passes[-1] < date(2011, 3, 1) + timedelta(days=45)


async def test_an_unplannable_new_item_is_not_read_again_until_an_earlier_line_comes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item at a location that no item of the last pass was at has no rate from its first
    line alone, so it gets no plan; a later line of the same day does not read its lines
    again, but a late line dated the day before, in the same batch as one of that day, gives it
    a rate and a plan at once."""
    settings = Settings(database_url=database_url)
    entries = history()
    last = datetime.fromisoformat(entries[-1]["occurred_at"].replace("Z", "+00:00"))
    planned: list[list[tuple[str, str]]] = []
    plan_new_items = planning.plan_new_items

    async def counted(*args: Any) -> Any:
        planned.append(sorted(args[1]))
        return await plan_new_items(*args)

    monkeypatch.setattr(store_module, "plan_new_items", counted)

    def line(hours: float, qty: int) -> dict[str, Any]:
        at = (last.replace(hour=0) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        position = len(entries) + 1
        entries.append(
            {
                "position": position,
                "entry_id": f"e{position}",
                "sku": "ODD",
                "location": "FAR",
                "kind": "commitment",
                "deltas": {"committed": qty},
                "occurred_at": at,
                "recorded_at": at,
                "source_event_id": f"s{position}",
                "source_type": "test",
            }
        )
        return entries[-1]

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        await pool.execute(f"TRUNCATE {TABLES}")
        store = ReplenisherStore(pool, default_policy(settings), line_settings(settings))
        replay = EventTimeReplay(pool, settings, store)
        assert await replay.apply(list(entries))
        plan = "SELECT reorder_point FROM replenishment_plans WHERE sku = 'ODD'"
        planned.clear()
        assert await replay.apply([line(10, 2)])
        assert planned == [[("ODD", "FAR")]]
        assert await pool.fetchval(plan) is None
        assert await replay.apply([line(11, 3)])  # the same first day: not read again
        assert await replay.apply([line(12, 1)])
        assert planned == [[("ODD", "FAR")]]
        assert await pool.fetchval(plan) is None
        assert await replay.apply([line(13, 1), line(-9, 4)])  # and one from the day before
        assert planned == [[("ODD", "FAR")], [("ODD", "FAR")]]
        assert await pool.fetchval(plan) is not None
    finally:
        await pool.close()


async def test_the_policy_endpoint_shows_the_plan_in_whole_units(settings: Settings) -> None:
    """Orders over several days through the running services: the replenisher plans as the
    history's days pass, and GET /v1/policies shows the figures the item is decided by."""
    settings = with_port(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    events = [ev.received("MUG", "UK", 50, occurred_at="2011-03-01T08:00:00Z")]
    for day in range(1, 10):
        at = f"2011-03-{day:02d}T10:00:00Z"
        events.append(ev.placed(f"O{day}", "UK", [("1", "MUG", 1 + day % 3)], occurred_at=at))
    async with (
        running(create_ledger(settings)),
        running(create_projector(settings)),
        running(create_service(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client,
    ):
        await produce_events(
            settings.kafka_bootstrap_servers, settings.topic_prefix + SCANS, events[:1]
        )
        await produce_events(
            settings.kafka_bootstrap_servers, settings.topic_prefix + ORDERS, events[1:]
        )

        async def planned() -> bool:
            r = await client.get("/v1/policies", params={"sku": "MUG", "location": "UK"})
            return r.status_code == 200 and r.json()["plan"] is not None

        try:
            await eventually(planned, seconds=60)
        except TimeoutError:
            conn = await asyncpg.connect(settings.database_url.get_secret_value())
            state = [dict(r) for r in await conn.fetch("SELECT * FROM replenishment_planner")]
            lines = await conn.fetchval("SELECT count(*) FROM demand_lines")
            entries = await conn.fetchval("SELECT count(*) FROM ledger_entries")
            items = [dict(r) for r in await conn.fetch("SELECT * FROM replenisher_items")]
            await conn.close()
            raise AssertionError(f"no plan: {state} {lines} {entries} {items}") from None
        body = (await client.get("/v1/policies", params={"sku": "MUG", "location": "UK"})).json()
    assert body["policy"]["policy"] == "lines"
    plan = body["plan"]
    assert isinstance(plan["reorder_point"], int)
    assert isinstance(plan["order_up_to"], int)
    assert 0 <= plan["expected_line_fill"] <= 1
    assert set(plan["lead_time_demand_quantiles"]) == {"p50", "p90", "p99"}
    assert plan["planned_for"].startswith("2011-03")
    assert body["figures"]["reorder_point"] == plan["reorder_point"]


def with_outsized_line(cancelled: bool) -> list[dict[str, Any]]:
    """The history, then on its last day an order line of 5,000 MUGs at UK (far above what the
    item is stocked for), cancelled 16 minutes later or not, then a JUG line the next day."""
    entries = history()
    last = datetime.fromisoformat(entries[-1]["occurred_at"].replace("Z", "+00:00"))
    placed = last.replace(hour=10, minute=1)
    moves: list[tuple[str, str, datetime, dict[str, int]]] = [
        ("MUG", "commitment", placed, {"committed": 5000})
    ]
    if cancelled:
        moves.append(("MUG", "release", placed + timedelta(minutes=16), {"committed": -5000}))
    moves.append(("JUG", "commitment", placed + timedelta(days=1), {"committed": 1}))
    for sku, kind, at, deltas in moves:
        position = entries[-1]["position"] + 1
        entries.append(
            {
                **entries[-1],
                "position": position,
                "entry_id": f"e{position}",
                "sku": sku,
                "location": "UK",
                "kind": kind,
                "deltas": deltas,
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "source_event_id": f"s{position}",
                "reference": "BIG-ORDER",
            }
        )
    return entries


async def test_an_outsized_line_cancelled_the_same_day_buys_nothing(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    before = await replay(database_url, settings, history(), 10_000)
    for batch in (10_000, 1):
        after = await replay(database_url, settings, with_outsized_line(cancelled=True), batch)
        assert after == before  # nothing was requested for it, not even for the hour it stood


async def test_an_outsized_line_still_standing_is_bought_once_its_day_is_over(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url)
    entries = with_outsized_line(cancelled=False)
    plan = await replay(database_url, settings, history(), 10_000)
    runs = [await replay(database_url, settings, entries, batch) for batch in (10_000, 7, 1)]
    assert runs[0] == runs[1] == runs[2]
    new = [r for r in runs[0] if r not in plan]
    assert len(new) == 1
    request = new[0]
    assert (request["sku"], request["location"]) == ("MUG", "UK")
    assert request["qty"] >= 5000  # the line, and the item's own stock after it
    # decided at the first entry of the next day (the JUG line), not when it was placed
    placed = datetime.fromisoformat(entries[-2]["occurred_at"].replace("Z", "+00:00"))
    assert request["needed_by"] == placed + timedelta(days=1 + settings.default_lead_time_days)


def demand_rows(skus: int, seed: int = 11) -> list[tuple[str, str, date, int, int]]:
    """Order lines of ``skus`` skus at one to three locations over 60 days, as the store keeps
    them (sku, location, day, size, lines of that size that day), in the order a pass reads
    them."""
    rng = random.Random(seed)
    rows = []
    for n in range(skus):
        sku = f"S{n:04d}"
        for location in ("UK", "EU", "ROW")[: rng.randint(1, 3)]:
            first = rng.randrange(40)
            rate = rng.choice((0.05, 0.3, 1.5))
            for day in range(first, 60):
                sizes = {rng.choice((1, 2, 6, 12, 48)) for _ in range(3) if rng.random() < rate}
                rows += [
                    (sku, location, START.date() + timedelta(days=day), q, rng.randint(1, 2))
                    for q in sorted(sizes)
                ]
    return sorted(rows)


async def test_a_pass_stores_the_planners_figures_kept_or_computed_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass reads each item's lines once and goes over the demands it kept twice more: its
    figures are those of the planner on the same lines, whether the curves are kept between
    the second and third goings-over or computed again (beyond ``CACHE_ITEMS``), and over
    several chunks of skus."""
    rows = demand_rows(3 * planning.CHUNK_SKUS // 2)
    today = START.date() + timedelta(days=59)
    settings = line_settings(Settings(database_url=database_url))
    planner = LinePlanner(settings)
    for sku, location, day, qty, lines in rows:
        for _ in range(lines):
            planner.add_line((sku, location), day.toordinal(), qty)
    expected = planner.plan(today.toordinal())
    assert len(expected.figures) > 2 * planning.CHUNK_SKUS
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        for kept in (planning.CACHE_ITEMS, 10):
            monkeypatch.setattr(planning, "CACHE_ITEMS", kept)
            await pool.execute(f"TRUNCATE {TABLES}")
            await pool.copy_records_to_table("demand_lines", records=rows)
            result = await planning.plan_lines(pool, settings, today)
            assert result["price"] == expected.price
            assert result["items"] == len(expected.figures)
            stored = await pool.fetch(
                f"SELECT pl.sku, pl.location, {planning.PLAN_COLUMNS} FROM replenishment_plans pl"
            )
            got = {(r["sku"], r["location"]): planning.plan_of(r) for r in stored}
            assert got == expected.figures
    finally:
        await pool.close()
