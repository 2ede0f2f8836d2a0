"""bench.retail reads the order histories users bring: plain or gzip, either encoding, either
dataset's column names, the date forms they are published in, rows in any order."""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.retail import RetailFormatError, product_code, retail_events

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


def table(lines: list[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("\n".join(lines))))


def as_csv(records: list[list[str]]) -> list[str]:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue().splitlines()


def test_online_retail_ii_names_are_matched_by_name_in_any_order_and_case_extras_ignored(
    tmp_path: Path, expected: list[tuple[str, bytes, dict[str, Any]]]
) -> None:
    names = [" invoice ", "Stock Code", "DESCRIPTION", "quantity", "Invoice_Date", "Price"]
    names += ["customer id", "COUNTRY"]
    order = [7, 3, 0, 8, 5, 1, 6, 4, 2]  # with an extra column (8) among them
    records = [[*names, "Notes"]] + [[*r, "x"] for r in table(ROWS)]
    shuffled = [[record[i] for i in order] for record in records]
    path = write(tmp_path / "retail-ii.csv", as_csv(shuffled))
    assert replay(path) == expected


def test_a_missing_column_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    header = HEADER.replace(",CustomerID", "")
    rows = [",".join(r[:6] + r[7:]) for r in table(ROWS)]
    path = write(tmp_path / "no-customers.csv", [header, *rows])
    with pytest.raises(RetailFormatError, match="no CustomerID column") as error:
        replay(path)
    assert "\n" not in str(error.value)
    assert "Customer ID" in str(error.value)


@pytest.mark.parametrize(
    "form", ["%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M:%S"]
)
def test_the_published_date_forms_read_alike(
    tmp_path: Path, expected: list[tuple[str, bytes, dict[str, Any]]], form: str
) -> None:
    records = table([HEADER, *ROWS])
    for record in records[1:]:
        at = datetime.strptime(record[4], "%Y-%m-%d %H:%M:%S")
        text = at.strftime(form)
        if "/" in form:  # the UCI original writes 12/1/2010 8:26, no leading zeros
            text = text.replace("/0", "/").lstrip("0").replace(" 0", " ")
        record[4] = text
    assert records[1][4] != ROWS[0].split(",")[4]
    path = write(tmp_path / "dates.csv", as_csv(records))
    assert replay(path) == expected


def test_month_first_dates_are_uk_local_time(tmp_path: Path) -> None:
    row = "540001,22423,REGENCY CAKESTAND 3 TIER,1,6/1/2011 9:05,12.75,13047,United Kingdom"
    events = replay(write(tmp_path / "summer.csv", [HEADER, row]))
    placed = [event for _, _, event in events if event["type"] == "order.placed"]
    assert placed[0]["occurred_at"] == "2011-06-01T08:05:00Z"


@pytest.mark.parametrize("text", ["2010-13-01 08:26:00", "01.12.2010 08:26", "", "yesterday"])
def test_a_date_in_no_known_form_is_an_error_naming_its_line(tmp_path: Path, text: str) -> None:
    records = table([HEADER, *ROWS])
    records[3][4] = text
    path = write(tmp_path / "bad-date.csv", as_csv(records))
    with pytest.raises(
        RetailFormatError, match=re.escape(f"line 4: InvoiceDate {text!r}")
    ) as error:
        replay(path)
    assert "\n" not in str(error.value)


def test_invoices_newest_first_give_the_events_of_the_file_oldest_first(
    tmp_path: Path, expected: list[tuple[str, bytes, dict[str, Any]]]
) -> None:
    invoices: dict[str, list[str]] = {}
    for row in ROWS:
        invoices.setdefault(row.split(",")[0], []).append(row)
    newest_first = [row for rows in reversed(invoices.values()) for row in rows]
    assert replay(write(tmp_path / "newest-first.csv", [HEADER, *newest_first])) == expected


def outline(events: list[tuple[str, bytes, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """What the events say, line ids aside, in a fixed order."""
    out: list[tuple[Any, ...]] = []
    for topic, key, event in events:
        data = event["data"]
        lines = sorted((line.get("sku"), line.get("qty")) for line in data.get("lines", []))
        what = (data.get("order_id"), data.get("sku"), data.get("qty"), tuple(lines))
        out.append((topic, key, event["type"], event["occurred_at"], what))
    return sorted(out, key=repr)


def test_rows_in_any_order_give_events_in_time_order(tmp_path: Path) -> None:
    rows = [*ROWS]
    ordered = replay(write(tmp_path / "ordered.csv", [HEADER, *ROWS]))
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        events = replay(write(tmp_path / f"shuffled-{seed}.csv", [HEADER, *rows]))
        times = [event["occurred_at"] for _, _, event in events]
        assert times == sorted(times)
        assert outline(events) == outline(ordered)


def test_an_interrupted_invoice_is_two_orders_in_a_sorted_file_and_one_in_an_unsorted_one(
    tmp_path: Path,
) -> None:
    first, second, third = ROWS[0], ROWS[2].replace("08:28", "08:26"), ROWS[1]
    interrupted = [HEADER, first, second, third]
    placed = [
        (event["data"]["order_id"], [line["line_id"] for line in event["data"]["lines"]])
        for _, _, event in replay(write(tmp_path / "sorted.csv", interrupted))
        if event["type"] == "order.placed"
    ]
    assert placed == [("536365", ["1"]), ("536366", ["1"]), ("536365/2", ["2"])]
    later = ROWS[5]  # 10:00, so the 08:26 rows after it are out of order
    unsorted = [HEADER, first, later, second, third]
    placed = [
        (event["data"]["order_id"], [line["line_id"] for line in event["data"]["lines"]])
        for _, _, event in replay(write(tmp_path / "unsorted.csv", unsorted))
        if event["type"] == "order.placed"
    ]
    assert placed == [("536365", ["1", "2"]), ("536366", ["1"]), ("536381", ["1"])]


def test_an_empty_file_is_an_error_and_a_header_alone_no_events(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RetailFormatError, match="empty"):
        replay(empty)
    assert replay(write(tmp_path / "header.csv.gz", [HEADER], gzipped=True)) == []


@pytest.mark.parametrize("code", ["B", "CRUK", "ADJUST2", "TEST001", "POST", "DCGS0003"])
def test_the_codes_of_fees_and_adjustments_of_any_year_are_not_products(code: str) -> None:
    assert product_code(code) == (None, "not_a_product")


def test_product_codes_are_kept_as_they_are() -> None:
    assert product_code(" 85123A ") == ("85123A", "")
    assert product_code("85123a") == ("85123a", "")
