"""The relay's messages, rendered by PostgreSQL, are byte for byte what the wire form gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest

from services.ledger.adapters.relay import rendered
from shared.events.ledger import dumps, entry_message

pytestmark = pytest.mark.integration

_INSERT = """
INSERT INTO ledger_entries (entry_id, source_event_id, line_no, sku, location, kind, on_hand,
    committed, damaged, quality_control, incoming, occurred_at, source_type, reference, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""
_ROWS = """
SELECT position, entry_id, sku, location, kind, on_hand, committed, damaged, quality_control,
       incoming, occurred_at, recorded_at, source_event_id, source_type, reference, detail
FROM ledger_entries ORDER BY position
"""


async def test_every_entry_is_published_as_the_wire_form_writes_it(database_url: str) -> None:
    entries = [
        ("MUG", "UK", "receipt", (5, 0, 0, 0, 0), datetime(2011, 1, 1, tzinfo=UTC), None, None),
        (
            'Tasse "bleue" \\ é',
            "Lyon Part-Dieu",
            "commitment",
            (0, 3, 0, 0, 0),
            datetime(1999, 12, 31, 23, 59, 59, 120000, tzinfo=UTC),
            "O-1",
            {"order_id": "O-1", "line_id": "1", "note": None, "bins": ["A", "B"]},
        ),
        (
            "日本のマグ",
            "東京",
            "adjustment",
            (-2, 0, 2, -1, 7),
            datetime(2999, 6, 1, 12, 0, 0, 1, tzinfo=UTC),
            "RQ-9",
            {"reason": "damaged", "expected": 10, "counted": 8, "ratio": 0.5},
        ),
        ("SKU 1", "EU", "shipment", (-1, -1, 0, 0, 0), datetime(2011, 7, 1, 8, 26), None, {}),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        for n, (sku, location, kind, deltas, at, reference, detail) in enumerate(entries):
            await conn.execute(
                _INSERT,
                uuid.uuid4(),
                uuid.uuid4(),
                n,
                sku,
                location,
                kind,
                *deltas,
                at.replace(tzinfo=at.tzinfo or UTC),
                "scan.adjusted",
                reference,
                None if detail is None else orjson.dumps(detail).decode(),
            )
        expected = [
            (r["position"], f"{r['location']}|{r['sku']}".encode(), dumps(entry_message(r)))
            for r in await conn.fetch(_ROWS)
        ]
        assert [tuple(r) for r in await rendered(conn, 0, 100)] == expected
        assert [tuple(r) for r in await rendered(conn, expected[1][0], 1)] == expected[2:3]
    finally:
        await conn.close()
