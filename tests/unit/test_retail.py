"""bench.retail reads the order histories users bring: plain or gzip, either encoding."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.retail import retail_events

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,"
    "United Kingdom",
    "536365,71053,WHITE MÉTAL LANTERN £,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "536366,DÉCO1,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
    "C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-1,2010-12-01 09:41:00,2.55,17850.0,"
    "United Kingdom",
    "536380,22961,dégât: wet,-24,2010-12-01 09:45:00,1.45,,United Kingdom",
    "536381,21791,VINTAGE HEADS AND TAILS CARD GAME,12,2010-12-01 10:00:00,1.25,12583.0,France",
]


def write(path: Path, lines: list[str], *, gzipped: bool = False, encoding: str = "utf-8") -> Path:
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def replay(path: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    return [(topic, key, orjson.loads(value)) for topic, key, value in retail_events(path)]


@pytest.fixture
def expected(tmp_path: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    """The rows above as UTF-8 gzip, the form the shipped history has."""
    return replay(write(tmp_path / "reference.csv.gz", [HEADER, *ROWS], gzipped=True))


def test_the_reference_rows_give_the_mapped_events(
    expected: list[tuple[str, bytes, dict[str, Any]]],
) -> None:
    kinds = [(event["type"], event["occurred_at"][11:16]) for _, _, event in expected]
    assert kinds == [
        ("scan.received", "07:26"),
        ("scan.received", "07:26"),
        ("scan.received", "07:28"),
        ("order.placed", "08:26"),
        ("order.placed", "08:28"),
        ("scan.received", "08:45"),
        ("scan.received", "09:00"),
        ("order.cancelled", "09:41"),
        ("scan.adjusted", "09:45"),
        ("order.placed", "10:00"),
        ("scan.shipped", "12:26"),  # line 1 of 536365 was cancelled before it went out
        ("scan.shipped", "12:28"),
        ("scan.shipped", "14:00"),
    ]
    placed = [event["data"] for _, _, event in expected if event["type"] == "order.placed"]
    assert [(p["order_id"], p["location"]) for p in placed] == [
        ("536365", "UK"),
        ("536366", "UK"),
        ("536381", "EU"),
    ]
    assert placed[1]["lines"] == [{"line_id": "1", "sku": "DÉCO1", "qty": 6}]
    adjusted = [event["data"] for _, _, event in expected if event["type"] == "scan.adjusted"]
    assert adjusted == [{"sku": "22961", "location": "UK", "qty": 24, "reason": "damaged"}]
    cancelled = [event["data"] for _, _, event in expected if event["type"] == "order.cancelled"]
    assert cancelled == [{"order_id": "536365", "lines": [{"line_id": "1"}]}]


@pytest.mark.parametrize(
    ("name", "gzipped"),
    [("history.csv", False), ("history.csv.gz", False), ("history.csv", True), ("history", True)],
)
def test_plain_and_gzip_files_are_told_apart_by_their_content_not_their_name(
    tmp_path: Path,
    expected: list[tuple[str, bytes, dict[str, Any]]],
    name: str,
    gzipped: bool,
) -> None:
    path = write(tmp_path / name, [HEADER, *ROWS], gzipped=gzipped)
    assert replay(path) == expected


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1"])
def test_a_byte_order_mark_or_latin_1_text_reads_as_utf_8_does(
    tmp_path: Path,
    expected: list[tuple[str, bytes, dict[str, Any]]],
    encoding: str,
    gzipped: bool,
) -> None:
    path = write(tmp_path / "resaved.csv", [HEADER, *ROWS], gzipped=gzipped, encoding=encoding)
    assert replay(path) == expected
