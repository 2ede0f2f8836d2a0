"""The Online Retail order history (shared/data/online-retail) as the suite's input events.

:func:`retail_events` yields ``(topic, key, value)`` in time order, the same shape as
:func:`bench.workload.input_messages`: unprefixed topic names, keys and values as bytes. The
benchmark replays it; the demo and the simulation can reuse it. The mapping, kept simple:

- **Orders.** An invoice is one ``order.placed``: ``order_id`` is the invoice number (in a file
  in time order, ``/2`` added for the rows of an invoice that come after another invoice's:
  542806 is split so; see *The file* for the others), the location
  comes from the invoice's country (``United Kingdom`` → ``UK``, a member of the EU in 2011 or
  ``European Community`` → ``EU``, anything else, ``Channel Islands`` and ``Unspecified``
  included → ``ROW``), one line per row with a positive quantity and a product stock code.
  ``line_id`` is the row's index within the invoice (1-based, counting every row of the invoice,
  so ids do not move when rows are skipped). An invoice with no such row places no order.
- **Shipments.** Every order line is shipped as a ``scan.shipped`` with its ``order_id`` and
  ``line_id``, 2 to 6 hours after the invoice (the hours a hash of the invoice number).
- **Cancellations.** A ``C`` invoice cancels, line by line, the customer's most recent earlier
  order line with the same stock code that is not cancelled yet: one ``order.cancelled`` per
  original order, listing those lines (a whole line, whatever quantity the cancellation names).
  A cancellation with no customer, or whose line cannot be found, is skipped. A line cancelled
  before its shipment time is not shipped; one cancelled after it changes nothing in the ledger
  (the units went out), as a late cancellation should.
- **Write-offs.** A negative row with no customer outside a ``C`` invoice (staff corrections) is
  a ``scan.adjusted`` of its units: reason ``damaged`` when its description speaks of damage
  (damage, wet, broken, faulty, mould, rust, thrown/throw away, smudge), ``lost`` otherwise.
  Other negative rows, and positive rows of ``C`` invoices, are skipped.
- **Opening stock.** Simulated: one ``scan.received`` per item and location, one hour before the
  item's first order line or write-off there, of twice its total ordered and written-off units
  over the rows read (so stock runs down but not out, cancellations aside).
- **Skipped stock codes.** Codes that are not products (``POST``, ``D``, ``M``, ``m``,
  ``BANK CHARGES``, ``AMAZONFEE``, ``DOT``, ``S``, ``C2``, ``PADS``, ``gift_0001_*``, ``DCGS*``,
  and those of the dataset's later and earlier years: ``B`` (bad debt), ``CRUK`` (commission),
  ``ADJUST*``, ``TEST*``),
  and empty or invalid codes (after stripping blanks; at most 64 printable characters). Codes
  keep their case: ``85123A`` and ``85123a`` are different items.
- **Times.** ``InvoiceDate`` is UK local time: read as Europe/London and sent in UTC
  (``…Z``), e.g. ``2011-06-01 09:00:00`` → ``2011-06-01T08:00:00Z``. The forms read are those
  the datasets are published in (:data:`DATE_FORMS`): ``2010-12-01 08:26:00``,
  ``2010-12-01 08:26``, ``12/1/2010 8:26`` (month first) and ``2010-12-01T08:26:00``; a row
  dated otherwise stops the replay with a :class:`RetailFormatError` naming its line.
- **Columns.** Found by name in the header row (:data:`COLUMNS`), in any order, whatever their
  case and blanks: ``InvoiceNo``/``Invoice``, ``StockCode``, ``Description``, ``Quantity``,
  ``InvoiceDate``, ``CustomerID``/``Customer ID``, ``Country``, the names of "Online Retail"
  and of "Online Retail II". Other columns (``UnitPrice``/``Price`` among them) are ignored; a
  missing one is a :class:`RetailFormatError` naming it. Rows with fewer fields are skipped.
- **Ids.** ``event_id`` is a uuid5 of the event's kind and identity, so a second replay of the
  same rows is recognised by the ledger as redelivery and changes nothing.

**The file.** Plain CSV or gzip, told apart by the gzip magic bytes, not by the name; UTF-8 with
or without a byte order mark, and any byte that is not UTF-8 read as Latin-1 (the UCI file
re-saved by a spreadsheet), so Latin-1 files decode too. A file in time order (each invoice, or
run of an invoice's rows, dated no earlier than the one before; the shipped history is) is
streamed twice, nothing held but per-item totals and the open orders of each customer: once for
the opening stock, once for the events. Any other (newest first, sorted by item or country,
shuffled) is found out on the first pass, which stops there; the second reads it whole and holds
it, about 120 bytes a row (30 MB for the shipped history's 246,000 rows, some 130 MB for the
1,067,000 of Online Retail II), each invoice number one invoice of its rows in file order, at the
time of its earliest row, and the invoices sorted by that time before any event is made.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import gzip
import hashlib
import heapq
import io
import itertools
import re
import uuid
import zlib
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

from shared.topics import ORDERS, SCANS

DATA = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "online-retail"
    / "online-retail-2010-12_2011-06.csv.gz"
)
"""The history shipped beside the repository (``shared/`` next to the work tree)."""
CSV_HELP = (
    "order history: Online Retail or Online Retail II columns (found by name), plain CSV or"
    " gzip, UTF-8 or Latin-1, rows in any order; default: the shipped history"
)
"""What a command's ``--csv`` takes, as its help says."""

SOURCE = "online-retail"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://stockledger.invalid/bench/online-retail")
_NAMESPACE_BYTES = NAMESPACE.bytes
LONDON = ZoneInfo("Europe/London")
OPENING_FACTOR = 2
OPENING_LEAD = timedelta(hours=1)

NOT_PRODUCTS = frozenset(
    {"POST", "D", "M", "m", "BANK CHARGES", "AMAZONFEE", "DOT", "S", "C2", "PADS", "B", "CRUK"}
)
NOT_PRODUCT_PREFIXES = ("gift_0001_", "DCGS", "ADJUST", "TEST")
EU = frozenset(
    {
        "Austria",
        "Belgium",
        "Bulgaria",
        "Cyprus",
        "Czech Republic",
        "Denmark",
        "EIRE",
        "Estonia",
        "European Community",
        "Finland",
        "France",
        "Germany",
        "Greece",
        "Hungary",
        "Ireland",
        "Italy",
        "Latvia",
        "Lithuania",
        "Luxembourg",
        "Malta",
        "Netherlands",
        "Poland",
        "Portugal",
        "Romania",
        "Slovakia",
        "Slovenia",
        "Spain",
        "Sweden",
    }
)
GZIP_MAGIC = b"\x1f\x8b"
_LATIN_1 = "bench.retail.latin-1"


def _as_latin_1(error: UnicodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 read as Latin-1 (the UCI file re-saved by a spreadsheet)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN_1, _as_latin_1)


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    """The file as text: gunzipped if it starts with the gzip magic bytes, whatever its name;
    UTF-8 with or without a byte order mark, any byte that is not UTF-8 read as Latin-1."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        binary: gzip.GzipFile | io.BufferedReader = (
            gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        )
        with io.TextIOWrapper(binary, encoding="utf-8-sig", errors=_LATIN_1, newline="") as text:
            yield text


_DAMAGE = re.compile(r"damag|wet|broken|faulty|mould|rust|thrown|throw away|smudge", re.IGNORECASE)


def location_of(country: str) -> str:
    country = country.strip()
    if country == "United Kingdom":
        return "UK"
    return "EU" if country in EU else "ROW"


@functools.cache
def product_code(raw: str) -> tuple[str | None, str]:
    """The stock code as an item code, or None and why: ``invalid_code`` (empty after stripping
    blanks, too long, unprintable) or ``not_a_product``."""
    code = raw.strip()
    if not code or len(code) > 64 or not code.isprintable():
        return None, "invalid_code"
    if code in NOT_PRODUCTS or code.startswith(NOT_PRODUCT_PREFIXES):
        return None, "not_a_product"
    return code, ""


@dataclass
class ReplayStats:
    """What the mapping made of the rows read."""

    rows: int = 0
    orders: int = 0
    order_lines: int = 0
    shipments: int = 0
    shipments_not_sent: int = 0  # their line was cancelled before the shipment time
    cancellations: int = 0
    cancelled_lines: int = 0
    cancel_lines_not_found: int = 0
    adjustments: int = 0
    receipts: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def events(self) -> int:
        return self.orders + self.shipments + self.cancellations + self.adjustments + self.receipts

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "events": self.events,
            "orders": self.orders,
            "order_lines": self.order_lines,
            "shipments": self.shipments,
            "shipments_not_sent": self.shipments_not_sent,
            "cancellations": self.cancellations,
            "cancelled_lines": self.cancelled_lines,
            "cancel_lines_not_found": self.cancel_lines_not_found,
            "adjustments": self.adjustments,
            "receipts": self.receipts,
            "skipped_rows": dict(self.skipped),
        }


@dataclass(slots=True)
class _Row:
    index: int  # within its invoice, 1-based
    code: str | None
    why: str  # why code is None
    description: str
    qty: int | None
    customer: str


@dataclass(slots=True)
class _Pending:
    topic: str
    key: bytes
    event: dict[str, Any]
    dropped: bool = False


DATE_FORMS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
)
"""The ``InvoiceDate`` forms read: ``2010-12-01 08:26:00``, ``2010-12-01 08:26``,
``12/1/2010 8:26`` (month first, as in the UCI original), with seconds too, and ISO
``2010-12-01T08:26:00``, without seconds too."""


class RetailFormatError(ValueError):
    """The file is not an order history this module can read: a required column is missing, or
    a row's date is in none of :data:`DATE_FORMS`. The message is one line naming the file."""


class _Clock:
    """UK local invoice times to UTC, memoised per distinct text (rows share their invoice's).

    The form that read the last new text is tried first: a file keeps to one."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[datetime, str]] = {}
        self.forms = list(DATE_FORMS)

    def utc(self, text: str) -> tuple[datetime, str]:
        """Raises ValueError if ``text`` is in none of the forms."""
        hit = self.cache.get(text)
        if hit is None:
            local = self._parse(text.strip()).replace(tzinfo=LONDON)
            at = local.astimezone(UTC)
            hit = (at, _rfc3339(at))
            if len(self.cache) > 100_000:
                self.cache.clear()
            self.cache[text] = hit
        return hit

    def _parse(self, text: str) -> datetime:
        for i, form in enumerate(self.forms):
            try:
                parsed = datetime.strptime(text, form)
            except ValueError:
                continue
            if i:
                self.forms.insert(0, self.forms.pop(i))
            return parsed
        raise ValueError(text)


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_id(kind: str, identity: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, f"{kind}:{identity}"))``, without the UUID object (a third of
    the generator's time otherwise)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + f"{kind}:{identity}".encode(), usedforsecurity=False)
    x = h.hexdigest()
    variant = "89ab"[int(x[16], 16) & 3]
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{variant}{x[17:20]}-{x[20:32]}"


def _envelope(kind: str, identity: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": _event_id(kind, identity),
        "type": kind,
        "schema_version": 1,
        "occurred_at": at,
        "source": SOURCE,
        "data": data,
    }


COLUMNS: dict[str, tuple[str, ...]] = {
    "InvoiceNo": ("InvoiceNo", "Invoice"),
    "StockCode": ("StockCode",),
    "Description": ("Description",),
    "Quantity": ("Quantity",),
    "InvoiceDate": ("InvoiceDate",),
    "CustomerID": ("CustomerID", "Customer ID"),
    "Country": ("Country",),
}
"""The columns read, each under the names it has in the original "Online Retail" and in "Online
Retail II", matched without regard to case, blanks or underscores. Others (the price) are
ignored."""


def _header_key(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).lower()


def _columns(path: Path, header: list[str]) -> tuple[int, ...]:
    """The position of each of :data:`COLUMNS` in the header, in that order."""
    where: dict[str, int] = {}
    for i, name in enumerate(header):
        where.setdefault(_header_key(name), i)
    found = []
    for column, names in COLUMNS.items():
        at = next((where[k] for k in map(_header_key, names) if k in where), None)
        if at is None:
            raise RetailFormatError(
                f"{path}: no {column} column ({' or '.join(names)}) in the header:"
                f" {','.join(header)}"
            )
        found.append(at)
    return tuple(found)


@dataclass(slots=True)
class _Invoice:
    name: str  # the invoice number, ``/2`` and so on added for a second run of its rows
    at: datetime
    at_text: str
    country: str
    rows: list[_Row]


_Record = tuple[str, datetime, str, str, str | None, str, str, int | None, str]
"""One row: invoice, time, time as sent, country, item code, why no code, description, quantity,
customer."""


def _records(path: Path, rows: int | None, clock: _Clock) -> Generator[_Record]:
    """The first ``rows`` rows, in file order."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise RetailFormatError(f"{path}: empty, not even a header")
        c_invoice, c_code, c_description, c_qty, c_date, c_customer, c_country = _columns(
            path, header
        )
        width = 1 + max(c_invoice, c_code, c_description, c_qty, c_date, c_customer, c_country)
        for record in itertools.islice(reader, rows):
            if len(record) < width:
                continue
            try:
                at, at_text = clock.utc(record[c_date])
            except ValueError:
                raise RetailFormatError(
                    f"{path}: line {reader.line_num}: InvoiceDate {record[c_date]!r} is in none"
                    " of the forms 2010-12-01 08:26:00, 2010-12-01 08:26, 12/1/2010 8:26"
                    " (month first), 2010-12-01T08:26:00"
                ) from None
            try:
                qty: int | None = int(record[c_qty])
            except ValueError:
                qty = None
            customer = record[c_customer].strip()
            if customer.endswith(".0"):
                customer = customer[:-2]
            code, why = product_code(record[c_code])
            invoice = record[c_invoice].strip()
            country = record[c_country]
            yield invoice, at, at_text, country, code, why, record[c_description], qty, customer


def _runs(records: Iterable[_Record]) -> Iterator[_Invoice]:
    """The invoices of rows in time order, each with the time of its first row.

    An invoice whose rows another invoice's interrupt (542806 is) comes out once per run of
    rows: the first as its number, the next ones as ``<number>/2``, ``<number>/3``…, with row
    indexes that go on counting, so that order ids, line ids and event ids stay unique."""
    runs: dict[str, int] = {}
    counted: dict[str, int] = {}
    current: _Invoice | None = None
    number: str | None = None
    for invoice, at, at_text, country, code, why, description, qty, customer in records:
        if invoice != number:
            if current is not None and number is not None:
                yield current
                counted[number] = current.rows[-1].index
            run = runs[invoice] = runs.get(invoice, 0) + 1
            name = invoice if run == 1 else f"{invoice}/{run}"
            number, current = invoice, _Invoice(name, at, at_text, country, [])
        assert current is not None
        index = counted.get(invoice, 0) + len(current.rows) + 1
        current.rows.append(_Row(index, code, why, description, qty, customer))
    if current is not None:
        yield current


def _by_number(records: Iterable[_Record]) -> list[_Invoice]:
    """The invoices of rows in any order, all of them held: each number is one invoice, of its
    rows in file order, at the time of its earliest row; sorted by that time (ties in the order
    of their first rows)."""
    invoices: dict[str, _Invoice] = {}
    texts: dict[str, str] = {}  # one copy of each description and customer held, not one a row
    for invoice, at, at_text, country, code, why, description, qty, customer in records:
        description = texts.setdefault(description, description)
        customer = texts.setdefault(customer, customer)
        current = invoices.get(invoice)
        if current is None:
            current = invoices[invoice] = _Invoice(invoice, at, at_text, country, [])
        elif at < current.at:
            current.at, current.at_text = at, at_text
        index = len(current.rows) + 1
        current.rows.append(_Row(index, code, why, description, qty, customer))
    return sorted(invoices.values(), key=lambda invoice: invoice.at)


def _is_write_off(invoice: str, row: _Row) -> bool:
    return not invoice.startswith("C") and not row.customer and row.qty is not None and row.qty < 0


def _opening_stock(
    invoices: Iterable[_Invoice], *, in_order: bool = False
) -> dict[tuple[str, str], tuple[datetime, int]] | None:
    """Per (location, sku): the time of its first order line or write-off, and the units. With
    ``in_order``, None as soon as an invoice comes before the one read last."""
    first: dict[tuple[str, str], tuple[datetime, int]] = {}
    last: datetime | None = None
    for invoice_at in invoices:
        invoice, at = invoice_at.name, invoice_at.at
        if in_order:
            if last is not None and at < last:
                return None
            last = at
        location = location_of(invoice_at.country)
        for row in invoice_at.rows:
            if row.code is None or row.qty is None:
                continue
            if invoice.startswith("C"):
                continue
            if row.qty > 0 or _is_write_off(invoice, row):
                key = (location, row.code)
                seen = first.get(key)
                units = abs(row.qty)
                first[key] = (at, units) if seen is None else (min(seen[0], at), seen[1] + units)
    return first


def retail_events(
    path: Path = DATA, *, rows: int | None = None, stats: ReplayStats | None = None
) -> Iterator[tuple[str, bytes, bytes]]:
    """The history's events in time order, as ``(topic, key, value)``; ``rows`` limits the rows
    read (the first ``rows``, for a short replay). ``stats``, if given, is filled as it goes.

    A file in time order is streamed; any other is held in memory whole, about 120 bytes a row,
    to be sorted (see the module's *The file*). Raises :class:`RetailFormatError` for a file
    without the columns read or with a date in none of :data:`DATE_FORMS`."""
    stats = stats if stats is not None else ReplayStats()
    clock = _Clock()
    with contextlib.closing(_records(path, rows, clock)) as records:
        opening = _opening_stock(_runs(records), in_order=True)
    invoices: Iterable[_Invoice]
    if opening is not None:
        invoices = _runs(_records(path, rows, clock))
    else:
        invoices = _by_number(_records(path, rows, clock))
        opening = _opening_stock(invoices)
        assert opening is not None
    seq = itertools.count()
    heap: list[tuple[datetime, int, _Pending]] = []
    for (location, sku), (at, units) in opening.items():
        when = at - OPENING_LEAD
        event = _envelope(
            "scan.received",
            f"opening:{location}|{sku}",
            _rfc3339(when),
            {"sku": sku, "location": location, "qty": max(1, OPENING_FACTOR * units)},
        )
        pending = _Pending(SCANS, f"{location}|{sku}".encode(), event)
        heapq.heappush(heap, (when, next(seq), pending))
        stats.receipts += 1
    # customer → their orders, latest last: (order_id, {stock code: [line ids]}) not yet cancelled
    orders_by_customer: dict[str, list[tuple[str, dict[str, list[str]]]]] = defaultdict(list)
    shipments: dict[tuple[str, str], _Pending] = {}

    def due(until: datetime) -> Iterator[tuple[str, bytes, bytes]]:
        while heap and heap[0][0] <= until:
            _, _, pending = heapq.heappop(heap)
            if pending.event["type"] == "scan.shipped":
                data = pending.event["data"]
                shipments.pop((data["order_id"], data["line_id"]), None)
                if pending.dropped:
                    stats.shipments_not_sent += 1
                    continue
                stats.shipments += 1
            yield pending.topic, pending.key, orjson.dumps(pending.event)

    for invoice_at in invoices:
        invoice, at, at_text, lines = (
            invoice_at.name,
            invoice_at.at,
            invoice_at.at_text,
            invoice_at.rows,
        )
        stats.rows += len(lines)
        location = location_of(invoice_at.country)
        yield from due(at)
        if invoice.startswith("C"):
            yield from _cancellation(invoice, at_text, lines, orders_by_customer, shipments, stats)
            continue
        order_lines: list[dict[str, Any]] = []
        for row in lines:
            if row.code is None:
                stats.skipped[row.why] += 1
                continue
            if row.qty is None or row.qty == 0:
                stats.skipped["no_quantity"] += 1
                continue
            if _is_write_off(invoice, row):
                reason = "damaged" if _DAMAGE.search(row.description) else "lost"
                stats.adjustments += 1
                event = _envelope(
                    "scan.adjusted",
                    f"{invoice}:{row.index}",
                    at_text,
                    {"sku": row.code, "location": location, "qty": -row.qty, "reason": reason},
                )
                yield SCANS, f"{location}|{row.code}".encode(), orjson.dumps(event)
            elif row.qty < 0:
                stats.skipped["negative_with_customer"] += 1
            else:
                order_lines.append({"line_id": str(row.index), "sku": row.code, "qty": row.qty})
        if not order_lines:
            continue
        stats.orders += 1
        stats.order_lines += len(order_lines)
        placed = _envelope(
            "order.placed",
            invoice,
            at_text,
            {"order_id": invoice, "location": location, "lines": order_lines},
        )
        yield ORDERS, invoice.encode(), orjson.dumps(placed)
        by_code: dict[str, list[str]] = defaultdict(list)
        for line in order_lines:
            by_code[line["sku"]].append(line["line_id"])
        customer = lines[0].customer
        if customer:
            orders_by_customer[customer].append((invoice, by_code))
        ship_at = at + timedelta(hours=2 + zlib.crc32(invoice.encode()) % 5)
        ship_text = _rfc3339(ship_at)
        for line in order_lines:
            shipped = _envelope(
                "scan.shipped",
                f"{invoice}:{line['line_id']}",
                ship_text,
                {
                    "sku": line["sku"],
                    "location": location,
                    "qty": line["qty"],
                    "order_id": invoice,
                    "line_id": line["line_id"],
                },
            )
            pending = _Pending(SCANS, f"{location}|{line['sku']}".encode(), shipped)
            shipments[(invoice, line["line_id"])] = pending
            heapq.heappush(heap, (ship_at, next(seq), pending))
    yield from due(datetime.max.replace(tzinfo=UTC))


def _cancellation(
    invoice: str,
    at_text: str,
    lines: list[_Row],
    orders_by_customer: dict[str, list[tuple[str, dict[str, list[str]]]]],
    shipments: dict[tuple[str, str], _Pending],
    stats: ReplayStats,
) -> Iterator[tuple[str, bytes, bytes]]:
    """One ``order.cancelled`` per original order found for the lines of a ``C`` invoice."""
    customer = lines[0].customer
    found: dict[str, list[str]] = {}
    for row in lines:
        if row.code is None:
            stats.skipped[row.why] += 1
            continue
        if row.qty is None or row.qty >= 0:
            stats.skipped["cancellation_not_negative"] += 1
            continue
        line_id = None
        for order_id, by_code in reversed(orders_by_customer.get(customer, [])):
            open_lines = by_code.get(row.code)
            if open_lines:
                line_id = open_lines.pop(0)
                found.setdefault(order_id, []).append(line_id)
                break
        if line_id is None:
            stats.cancel_lines_not_found += 1
    for order_id, line_ids in found.items():
        stats.cancellations += 1
        stats.cancelled_lines += len(line_ids)
        for line_id in line_ids:
            pending = shipments.get((order_id, line_id))
            if pending is not None:
                pending.dropped = True
        event = _envelope(
            "order.cancelled",
            f"{invoice}:{order_id}",
            at_text,
            {"order_id": order_id, "lines": [{"line_id": i} for i in line_ids]},
        )
        yield ORDERS, order_id.encode(), orjson.dumps(event)
