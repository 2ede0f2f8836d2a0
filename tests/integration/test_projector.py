"""The projector and the HTTP API, fed by the ledger, against the real servers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jsonschema_rs
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.projector.rebuild import rebuild
from shared.events.ledger import as_json, entry_message
from shared.levels import STATES, fold
from shared.settings import Settings
from shared.topics import LEVELS, ORDERS, REPLENISHMENT_UPDATES, SCANS, topic_specs

from .. import events as ev
from ..conftest import ROOT
from ..kafka_io import eventually, ledger_input_lag, produce_events
from ..reference import random_history
from ..services import running, with_port
from .test_ledger_service import topic_of

pytestmark = pytest.mark.integration

ODD = ["BANK CHARGES", "a/b", "what?", "fish & chips", "tasse à café", "#1 50%", "x+y=z"]


async def publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    for topic in (SCANS, ORDERS, REPLENISHMENT_UPDATES):
        chosen = [e for e in events if topic_of(e) == topic]
        if chosen:
            await produce_events(
                settings.kafka_bootstrap_servers, settings.topic_prefix + topic, chosen
            )


async def ledger_entries(settings: Settings) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch("SELECT * FROM ledger_entries ORDER BY position")
    finally:
        await conn.close()
    return [as_json(entry_message(r)) for r in rows]


async def read_model(settings: Settings) -> dict[tuple[str, str], dict[str, int]]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch(f"SELECT sku, location, {', '.join(STATES)} FROM stock_levels")
    finally:
        await conn.close()
    return {(r["sku"], r["location"]): {s: r[s] for s in STATES} for r in rows}


async def caught_up(settings: Settings) -> bool:
    """The ledger has consumed every input message, and the read model is a fold of the whole
    ledger (a read model equal to a ledger that is still growing is not caught up)."""
    if await ledger_input_lag(settings):
        return False
    entries = await ledger_entries(settings)
    return bool(entries) and await read_model(settings) == fold(entries)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = with_port(settings)
    async with (
        running(create_ledger(settings)),
        running(create_projector(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client,
    ):
        yield settings, client


async def test_levels_totals_and_history_answer_for_odd_skus(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    events = []
    for sku in ODD:
        events += [
            ev.received(sku, "UK", 10),
            ev.received(sku, "EU/1", 4),
            ev.placed(f"O-{sku}", "UK", [("1", sku, 3)]),
        ]
    await publish(settings, events)
    await eventually(lambda: caught_up(settings))
    for sku in ODD:
        one = await client.get("/v1/stock", params={"sku": sku, "location": "UK"})
        assert one.status_code == 200, one.text
        assert one.json() | {"updated_at": None, "position": None} == {
            "sku": sku,
            "location": "UK",
            "on_hand": 10,
            "committed": 3,
            "damaged": 0,
            "quality_control": 0,
            "incoming": 0,
            "available": 7,
            "updated_at": None,
            "position": None,
        }
        every = (await client.get(f"/v1/stock?sku={quote(sku, safe='')}")).json()
        assert [level["location"] for level in every["locations"]] == ["EU/1", "UK"]
        assert every["total"]["on_hand"] == 14
        assert every["total"]["available"] == 11
        trail = (await client.get("/v1/stock/ledger", params={"sku": sku, "location": "UK"})).json()
        # the receipt and the order travel on different topics: either may be recorded first
        assert sorted(e["kind"] for e in trail["entries"]) == ["commitment", "receipt"]
        assert trail["entries"][0]["source_event_id"]
        assert trail["next_after"] is None


async def latest_levels(settings: Settings) -> dict[bytes, tuple[int, dict[str, Any]]]:
    """Every message on the levels topic so far, the last one per key: (partition, value)."""
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + LEVELS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        latest: dict[bytes, tuple[int, dict[str, Any]]] = {}
        while batch := await consumer.getmany(timeout_ms=500):
            for records in batch.values():
                for r in records:
                    assert r.key is not None
                    latest[r.key] = (r.partition, orjson.loads(r.value))
        return latest
    finally:
        await consumer.stop()


async def test_each_item_s_last_level_on_the_topic_is_the_level_the_api_answers(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    events = []
    for n, sku in enumerate(ODD):
        events += [
            ev.received(sku, "UK", 10 + n),
            ev.received(sku, "EU/1", 4),
            ev.placed(f"O-{sku}", "UK", [("1", sku, 3)]),
            ev.adjusted(sku, "EU/1", 1, "damaged"),
        ]
    await publish(settings, events)
    await eventually(lambda: caught_up(settings))
    schema = orjson.loads((ROOT / "docs" / "schemas" / "stock.levels.v1.json").read_bytes())
    validator = jsonschema_rs.validator_for(schema)
    answers = {}
    for sku in ODD:
        for location in ("UK", "EU/1"):
            got = await client.get("/v1/stock", params={"sku": sku, "location": location})
            answers[f"{location}|{sku}".encode()] = got.json()

    async def published() -> bool:
        latest = await latest_levels(settings)
        return {k: v for k, (_, v) in latest.items()} == answers

    await eventually(published)
    count = {t.name: t.partitions for t in topic_specs(settings.topic_prefix)}[
        settings.topic_prefix + LEVELS
    ]
    every = list(range(count))
    for key, (partition, level) in (await latest_levels(settings)).items():
        validator.validate(level)
        # where Kafka's own clients would put the key, so compaction keeps one level per item
        assert partition == DefaultPartitioner()(key, every, every)
    assert answers[b"UK|BANK CHARGES"]["available"] == 7
    assert answers[b"EU/1|BANK CHARGES"]["available"] == 3


async def test_the_ledger_history_pages_by_position(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    await publish(settings, [ev.received("MUG", "UK", n) for n in range(1, 8)])
    await eventually(lambda: caught_up(settings))
    seen: list[int] = []
    after = 0
    while True:
        page = (
            await client.get(
                "/v1/stock/ledger",
                params={"sku": "MUG", "location": "UK", "limit": 3, "after": after},
            )
        ).json()
        seen += [e["deltas"]["on_hand"] for e in page["entries"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert sorted(seen) == list(range(1, 8))


async def test_bad_parameters_are_400_and_unknown_items_404_without_traces(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    await publish(settings, [ev.received("MUG", "UK", 1)])
    await eventually(lambda: caught_up(settings))
    cases = [
        ("/v1/stock", {}, 400),
        ("/v1/stock", {"sku": " MUG"}, 400),
        ("/v1/stock", {"sku": "x" * 65}, 400),
        ("/v1/stock", {"sku": "MUG", "location": "UK", "as_of": "yesterday"}, 400),
        ("/v1/stock", {"sku": "MUG", "location": "UK", "as_of": "2011-07-01T08:00:00"}, 400),
        ("/v1/stock", {"sku": "MUG", "as_of": "2011-07-01T08:00:00Z"}, 400),
        ("/v1/stock/ledger", {"sku": "MUG"}, 400),
        ("/v1/stock/ledger", {"sku": "MUG", "location": "UK", "limit": "0"}, 400),
        ("/v1/stock/ledger", {"sku": "MUG", "location": "UK", "limit": "lots"}, 400),
        ("/v1/stock/ledger", {"sku": "MUG", "location": "UK", "after": "-1"}, 400),
        ("/v1/locations/stock", {}, 400),
        ("/v1/locations/stock", {"location": "UK", "oversold": "maybe"}, 400),
        ("/v1/stock", {"sku": "NOPE"}, 404),
        ("/v1/stock", {"sku": "MUG", "location": "MARS"}, 404),
        ("/v1/stock", {"sku": "MUG", "location": "MARS", "as_of": "2011-07-01T08:00:00Z"}, 404),
        ("/v1/nowhere", {}, 404),
    ]
    for path, query, status in cases:
        answer = await client.get(path, params=query)
        assert answer.status_code == status, (path, query, answer.text)
        body = answer.json()
        assert set(body) >= {"error", "detail"}, body
        assert "Traceback" not in answer.text


async def test_location_listing_filters_oversold_and_pages(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    events = [ev.received(f"SKU-{i}", "UK", 5) for i in range(5)]
    events += [ev.placed("O1", "UK", [("1", "SKU-1", 9), ("2", "SKU-3", 6)])]
    await publish(settings, events)
    await eventually(lambda: caught_up(settings))
    oversold = (
        await client.get("/v1/locations/stock", params={"location": "UK", "oversold": "true"})
    ).json()
    assert [(i["sku"], i["available"]) for i in oversold["items"]] == [("SKU-1", -4), ("SKU-3", -1)]
    skus, after = [], ""
    while True:
        page = (
            await client.get(
                "/v1/locations/stock",
                params={"location": "UK", "limit": 2, "after": after}
                if after
                else {"location": "UK", "limit": 2},
            )
        ).json()
        skus += [i["sku"] for i in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert skus == [f"SKU-{i}" for i in range(5)]


async def test_stock_as_of_any_time_equals_a_fold_of_the_ledger_up_to_then(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    history = random_history(random.Random(4), 400)
    await publish(settings, history)
    await eventually(lambda: caught_up(settings))
    entries = await ledger_entries(settings)
    times = sorted({e["occurred_at"] for e in entries})
    rng = random.Random(9)
    for _ in range(25):
        at = rng.choice(times)
        sku, location = rng.choice([(e["sku"], e["location"]) for e in entries])
        upto = [
            e
            for e in entries
            if e["sku"] == sku
            and e["location"] == location
            and datetime.fromisoformat(e["occurred_at"]) <= datetime.fromisoformat(at)
        ]
        expected = fold(upto).get((sku, location), dict.fromkeys(STATES, 0))
        got = (
            await client.get("/v1/stock", params={"sku": sku, "location": location, "as_of": at})
        ).json()
        assert {s: got[s] for s in STATES} == expected


async def test_rebuild_while_serving_equals_the_live_model(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    history = random_history(random.Random(12), 1500)
    await publish(settings, history)
    await eventually(lambda: caught_up(settings))
    live = await read_model(settings)

    async def keep_asking() -> int:
        answered = 0
        while not done.is_set():
            answer = await client.get("/v1/stock", params={"sku": "SKU-0", "location": "UK"})
            assert answer.status_code in (200, 404)
            answered += 1
        return answered

    done = asyncio.Event()
    asker = asyncio.create_task(keep_asking())
    result = await rebuild(settings.database_url.get_secret_value(), chunk=100)
    done.set()
    assert await asker > 0
    assert result.entries == len(await ledger_entries(settings))
    assert await read_model(settings) == live == fold(await ledger_entries(settings))
