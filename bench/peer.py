"""The peer: the same ledger workload through the ``eventsourcing`` library's PostgreSQL store,
the obvious Python alternative (../shared/docs/performance.md).

One aggregate per sku and location (:class:`Item`), with ``Received``, ``Committed``,
``Shipped`` and ``Adjusted`` events that update its counters. An input event becomes one
aggregate event per item it touches (an order: one ``Committed`` per line). Two ways of using it:

- **usual**: per input event, load each aggregate it touches from the store (created when it is
  not there), apply the event, save them (one ``save``, one transaction) — the library's default
  configuration, no aggregate cache;
- **batched**: the input in runs that touch at most 200 aggregates, saved together in one
  ``save``; aggregates come from the library's own aggregate cache
  (``AGGREGATE_CACHE_MAXSIZE``, fast-forward and deep copies off, which it allows for a single
  writer), so an aggregate is read from PostgreSQL only the first time it is seen: the library at
  its fastest.

The peer does less than the ledger: no deduplication of event ids, no order-line state, no
outbox or relay; its messages are parsed before the clock starts. Each store gets its own table
in a scratch database (``PERSISTENCE_MODULE=eventsourcing.postgres`` and the ``POSTGRES_*``
settings).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from .progress import Progress

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://stockledger.invalid/bench/peer")
PER_SAVE = 200

Op = tuple[str, str, str, int]
"""(sku, location, what, qty): what is received, committed, shipped, lost, damaged or found."""


class Item(Aggregate):
    """Stock of one sku at one location."""

    def __init__(self, sku: str, location: str) -> None:
        self.sku = sku
        self.location = location
        self.on_hand = 0
        self.committed_units = 0
        self.damaged = 0

    @staticmethod
    def create_id(sku: str, location: str) -> uuid.UUID:
        return item_id(sku, location)

    @event("Received")
    def received(self, qty: int) -> None:
        self.on_hand += qty

    @event("Committed")
    def committed(self, qty: int) -> None:
        self.committed_units += qty

    @event("Shipped")
    def shipped(self, qty: int) -> None:
        self.on_hand -= qty
        self.committed_units = max(0, self.committed_units - qty)

    @event("Adjusted")
    def adjusted(self, qty: int, reason: str) -> None:
        if reason == "damaged":
            self.damaged += qty
        elif reason == "found":
            self.on_hand += qty
        else:
            self.on_hand -= qty


@functools.cache
def item_id(sku: str, location: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{location}|{sku}")


def apply(item: Item, what: str, qty: int) -> None:
    if what == "received":
        item.received(qty)
    elif what == "committed":
        item.committed(qty)
    elif what == "shipped":
        item.shipped(qty)
    else:
        item.adjusted(qty, what)


def operations(messages: Iterable[tuple[str, bytes, bytes]]) -> list[list[Op]]:
    """Per input event, the aggregate events it makes."""
    ops: list[list[Op]] = []
    for _, _, value in messages:
        e = orjson.loads(value)
        d = e["data"]
        kind = e["type"]
        if kind == "order.placed":
            ops.append([(ln["sku"], d["location"], "committed", ln["qty"]) for ln in d["lines"]])
        elif kind == "scan.received":
            ops.append([(d["sku"], d["location"], "received", d["qty"])])
        elif kind == "scan.shipped":
            ops.append([(d["sku"], d["location"], "shipped", d["qty"])])
        elif kind == "scan.adjusted":
            ops.append([(d["sku"], d["location"], d["reason"], d["qty"])])
    return ops


def environment(database_url: str) -> dict[str, str]:
    """eventsourcing's settings for the PostgreSQL database at ``database_url``."""
    url = urlsplit(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or ""),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
    }


class Usual(Application[uuid.UUID]):
    """Stock per item, used the usual way (table ``usual_events``)."""


class Batched(Application[uuid.UUID]):
    """Stock per item, saved in batches (table ``batched_events``)."""


def _load(app: Application[uuid.UUID], sku: str, location: str) -> Item:
    try:
        item: object = app.repository.get(item_id(sku, location))
    except AggregateNotFoundError:
        return Item(sku, location)
    assert isinstance(item, Item)
    return item


def usual(app: Application[uuid.UUID], ops: list[list[Op]], tick: Callable[[int], None]) -> None:
    """Per input event: load, apply, save."""
    for n, event_ops in enumerate(ops, 1):
        touched: dict[uuid.UUID, Item] = {}
        for sku, location, what, qty in event_ops:
            key = item_id(sku, location)
            item = touched.get(key) or _load(app, sku, location)
            apply(item, what, qty)
            touched[key] = item
        app.save(*touched.values())
        if n % 50 == 0:
            tick(n)


def batched(app: Application[uuid.UUID], ops: list[list[Op]], tick: Callable[[int], None]) -> int:
    """Runs of input events touching at most PER_SAVE aggregates, each saved together; returns
    the number of saves."""
    pending: dict[uuid.UUID, Item] = {}
    saves = 0
    for n, event_ops in enumerate(ops, 1):
        keys = {item_id(sku, location) for sku, location, _, _ in event_ops}
        if pending and len(pending) + len(keys - pending.keys()) > PER_SAVE:
            app.save(*pending.values())
            saves += 1
            pending.clear()
            tick(n)
        for sku, location, what, qty in event_ops:
            key = item_id(sku, location)
            item = pending.get(key) or _load(app, sku, location)
            apply(item, what, qty)
            pending[key] = item
    if pending:
        app.save(*pending.values())
        saves += 1
    return saves


def run_peer(
    database_url: str,
    usual_messages: list[tuple[str, bytes, bytes]],
    batched_messages: list[tuple[str, bytes, bytes]],
) -> dict[str, Any]:
    """Both uses on their own tables; events/s counts input events, as the ledger's ingest does.
    Blocking (psycopg): run it in a thread."""
    env = environment(database_url)
    results: dict[str, Any] = {}
    for name, messages in (("usual", usual_messages), ("batched", batched_messages)):
        ops = operations(messages)
        if name == "usual":
            app: Application[uuid.UUID] = Usual(env=env)
        else:
            app = Batched(
                env={
                    **env,
                    "AGGREGATE_CACHE_MAXSIZE": "1000000",
                    "AGGREGATE_CACHE_FASTFORWARD": "n",
                    "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
                }
            )
        try:
            with Progress(f"peer, {name}", len(ops)) as progress:
                started = time.perf_counter()
                if name == "usual":
                    usual(app, ops, progress.update)
                    saves = len(ops)
                else:
                    saves = batched(app, ops, progress.update)
                seconds = time.perf_counter() - started
        finally:
            app.close()
        aggregate_events = sum(len(o) for o in ops)
        results[name] = {
            "events": len(ops),
            "aggregate_events": aggregate_events,
            "saves": saves,
            "seconds": seconds,
            "per_second": len(ops) / seconds,
            "aggregate_events_per_second": aggregate_events / seconds,
        }
    results["aggregates_per_save"] = PER_SAVE
    results["library"] = "eventsourcing " + _version()
    return results


def _version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")
