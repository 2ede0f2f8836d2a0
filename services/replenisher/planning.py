"""The ``lines`` plan kept in PostgreSQL: each item's reorder point and order-up-to level.

A pass (:func:`plan_lines`) reads the order lines of every item as of an event-time day, a few
thousand skus at a time, once: it estimates each item's line demand (:mod:`.lines`), kept in a
few numbers an item (:class:`Demands`, so memory stays flat however long the histories), and sets
the scale of order quantities over all items (:func:`.lines.order_scale`). Then it goes over the
demands to set the price of stock that meets the target fill (or the budget) over all items, and
again to store every item's figures at that price. An item first seen after a pass is planned on
its own at the last price and scale (:func:`plan_new_items`), in the transaction that decides on
it.

Event time: the day a pass is for is a day of the ledger's ``occurred_at``, never the clock's,
so a replay at any speed, a backfill and live operation plan alike.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import numpy as np
import orjson

from shared.db import Connection

from .lines import (
    EARLY_DAYS,
    Choices,
    Item,
    LineDemand,
    LineFigures,
    LineHistory,
    LinePlanner,
    LineSettings,
    PriceTable,
    best_point,
    choices,
    curve,
    figures_at,
    figures_chosen,
    location_priors,
    order_scale,
    regular_daily_units,
)

CHUNK_SKUS = 100
CACHE_ITEMS = 20_000


class Demands:
    """The demands a pass estimated, in the order estimated, kept for its later goings-over
    instead of reading every item's lines again (that reading was about 40% of a pass's CPU):
    in arrays, 48 bytes an item and 16 a distinct line size, with each sku's name once, where a
    :class:`.lines.LineDemand` is several hundred bytes of Python objects. Items come back as
    they went in, the same numbers."""

    def __init__(self) -> None:
        self.skus: list[str] = []  # each sku once, in the order added
        self.locations: list[str] = []
        self._location_at: dict[str, int] = {}
        self.sku = array("q")  # per item: index into skus
        self.location = array("q")  # index into locations
        self.numbers = array("d")  # rate, history days, cv: three an item
        self.ends = array("q")  # per item: end of its sizes and weights
        self.sizes = array("q")
        self.weights = array("d")
        self.marks: list[int] = [0]  # items kept by the end of each mark()

    def add(self, item: Item, demand: LineDemand) -> None:
        sku, location = item
        if not self.skus or self.skus[-1] != sku:
            self.skus.append(sku)
        at = self._location_at.get(location)
        if at is None:
            at = self._location_at[location] = len(self.locations)
            self.locations.append(location)
        self.sku.append(len(self.skus) - 1)
        self.location.append(at)
        self.numbers.extend((demand.rate, demand.history_days, demand.cv))
        self.sizes.extend(demand.sizes)
        self.weights.extend(demand.weights)
        self.ends.append(len(self.sizes))

    def mark(self) -> None:
        """Close a part (a chunk of skus): :meth:`part` gives its items back."""
        self.marks.append(len(self.sku))

    def part(self, number: int) -> Iterator[tuple[Item, LineDemand]]:
        for i in range(self.marks[number], self.marks[number + 1]):
            start = self.ends[i - 1] if i else 0
            end = self.ends[i]
            rate, days, cv = self.numbers[3 * i : 3 * i + 3]
            yield (
                (self.skus[self.sku[i]], self.locations[self.location[i]]),
                LineDemand(
                    rate=rate,
                    sizes=tuple(self.sizes[start:end]),
                    weights=tuple(self.weights[start:end]),
                    history_days=days,
                    cv=cv,
                ),
            )


@dataclass(frozen=True)
class PlannerState:
    price: float
    planned_for: date
    priors: dict[str, float]
    scale: float | None = None  # of order quantities (lines.order_scale)


def is_due(planned_for: date | None, first_day: date, latest_day: date, every: int) -> date | None:
    """The day a pass is due for, once event time has reached ``latest_day``: the first day
    seen, if nothing was planned, else the last day after ``planned_for`` and before
    ``latest_day`` whose ordinal is a multiple of ``every`` (None: nothing due). A day is
    planned once it is over, that is when a later day has been seen."""
    if planned_for is None:
        return first_day if latest_day > first_day else None
    last = latest_day.toordinal() - 1
    boundary = last - last % every
    return date.fromordinal(boundary) if boundary > planned_for.toordinal() else None


async def planner_state(conn: Connection | asyncpg.Pool) -> PlannerState | None:
    row = await conn.fetchrow(
        "SELECT price, planned_for, priors, order_scale FROM replenishment_planner"
    )
    if row is None:
        return None
    return PlannerState(
        row["price"], row["planned_for"], orjson.loads(row["priors"]), row["order_scale"]
    )


async def _priors(conn: Connection | asyncpg.Pool, today: date) -> dict[str, float]:
    rows = await conn.fetch(
        "SELECT location, first, sum(lines) FILTER (WHERE day < first + $2::int) AS early,"
        " sum(lines) AS lines FROM (SELECT location, sku, day, lines,"
        "  min(day) OVER (PARTITION BY sku, location) AS first FROM demand_lines"
        "  WHERE day <= $1) t GROUP BY sku, location, first",
        today,
        EARLY_DAYS,
    )
    return location_priors(
        ((r["location"], r["first"].toordinal(), r["early"], r["lines"]) for r in rows),
        today.toordinal(),
    )


async def _lines(
    conn: Connection | asyncpg.Pool, skus: Sequence[str], today: date
) -> list[asyncpg.Record]:
    """The order lines of the skus up to ``today``, by sku, location, day and size."""
    return list(
        await conn.fetch(
            "SELECT sku, location, day, qty, lines FROM demand_lines"
            " WHERE sku = ANY($1::text[]) AND day <= $2 ORDER BY sku, location, day, qty",
            list(skus),
            today,
        )
    )


async def _histories(
    conn: Connection | asyncpg.Pool, skus: Sequence[str], today: date
) -> dict[Item, LineHistory]:
    return _histories_of(await _lines(conn, skus, today))


def _histories_of(rows: Iterable[asyncpg.Record]) -> dict[Item, LineHistory]:
    histories: dict[Item, LineHistory] = {}
    for r in rows:
        item = (r["sku"], r["location"])
        day = r["day"].toordinal()
        h = histories.get(item)
        if h is None:
            h = histories[item] = LineHistory(day)
        for _ in range(r["lines"]):
            h.add(day, r["qty"])
    return histories


def _planner(
    settings: LineSettings, histories: dict[Item, LineHistory], priors: dict[str, float]
) -> LinePlanner:
    planner = LinePlanner(settings)
    for item in sorted(histories):
        planner.histories[item] = histories[item]
        planner.locations.setdefault(item[0], []).append(item[1])
    planner.priors = priors
    return planner


def _chunks(skus: list[str]) -> Iterator[list[str]]:
    for at in range(0, len(skus), CHUNK_SKUS):
        yield skus[at : at + CHUNK_SKUS]


async def plan_lines(
    pool: asyncpg.Pool,
    settings: LineSettings,
    today: date,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """A full pass as of ``today`` (event time): every item's figures, and the price."""
    started = time.perf_counter()
    skus = [
        r["sku"]
        for r in await pool.fetch(
            "SELECT DISTINCT sku FROM demand_lines WHERE day <= $1 ORDER BY sku", today
        )
    ]
    priors = await _priors(pool, today)
    t = today.toordinal()
    table = PriceTable()
    total = 3 * len(skus)
    done = 0
    rates, daily = array("d"), array("d")  # two numbers an item: 1.6 MB for 100,000
    demands = Demands()
    for chunk in _chunks(skus):  # the lines, read once: each item's demand, and the scale
        planner = _planner(settings, await _histories(pool, chunk, today), priors)
        for item in planner.histories:
            demand = planner.demand(item, t)
            rates.append(demand.rate)
            daily.append(regular_daily_units(demand))
            if demand.rate > 0 and demand.sizes:
                demands.add(item, demand)
        demands.mark()
        done += len(chunk)
        if progress:
            progress(done, total)
    scale = order_scale(np.frombuffer(rates), np.frombuffer(daily), settings.review_days)
    del rates, daily
    # What a pass needs of up to CACHE_ITEMS items' curves is kept from the second going-over
    # for the third (about 1 KB an item); beyond that they are computed again, so memory
    # stays flat however many items there are.
    cache: dict[Item, Choices] | None = {}
    for number, chunk in enumerate(_chunks(skus)):  # second: the price
        for item, demand in demands.part(number):
            c = curve(demand, settings, scale)
            if cache is not None:
                cache[item] = ch = choices(c, demand)
                table.add(ch)
            else:
                table.add(c)
        if cache is not None and len(cache) > CACHE_ITEMS:
            cache = None
        done += len(chunk)
        if progress:
            progress(done, total)
    price = table.price(settings)
    if cache and figures_chosen(next(iter(cache.values())), price) is None:
        cache = None  # a price off the grid (a budget no price meets): the curves are needed
    items = 0
    served = lines = units = 0.0
    async with pool.acquire() as conn, conn.transaction():
        for number, chunk in enumerate(_chunks(skus)):  # third: the figures at that price
            figures: dict[Item, LineFigures] = {}
            for item, demand in demands.part(number):
                kept = None if cache is None else figures_chosen(cache.pop(item), price)
                if kept is None:
                    c = curve(demand, settings, scale)
                    kept = figures_at(c, best_point(c, price), demand)
                figures[item] = kept
            for f in figures.values():
                served += f.expected_fill * f.lines_per_day
                lines += f.lines_per_day
                units += f.expected_units
            await _store(conn, figures, today)
            items += len(figures)
            done += len(chunk)
            if progress:
                progress(done, total)
        # items no longer sold (no rate left) keep no figures
        await conn.execute("DELETE FROM replenishment_plans WHERE planned_for < $1", today)
        await conn.execute(
            "INSERT INTO replenishment_planner (singleton, price, planned_for, expected_fill,"
            " expected_units, items, priors, order_scale)"
            " VALUES (true, $1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (singleton) DO UPDATE SET price = EXCLUDED.price,"
            " planned_for = EXCLUDED.planned_for, expected_fill = EXCLUDED.expected_fill,"
            " expected_units = EXCLUDED.expected_units, items = EXCLUDED.items,"
            " priors = EXCLUDED.priors, order_scale = EXCLUDED.order_scale,"
            " computed_at = now()",
            price,
            today,
            served / lines if lines else 1.0,
            units,
            items,
            orjson.dumps(priors).decode(),
            scale,
        )
    return {
        "items": items,
        "price": price,
        "expected_fill": served / lines if lines else 1.0,
        "expected_units": units,
        "seconds": time.perf_counter() - started,
    }


async def plan_new_items(
    conn: Connection,
    first_lines: dict[Item, tuple[date, int]],
    state: PlannerState,
    settings: LineSettings,
) -> dict[Item, LineFigures]:
    """Figures for items the last pass did not plan, at its price, from the first line of each
    in this batch (its day and size) and the lines before that day: a new item is stocked from
    its first line, its rate pooled with the location's early rates and its sizes with the same
    sku's lines elsewhere. Lines later the same day are not read, so the figures do not depend
    on how many of them arrived in the same batch."""
    # the lines before each first day, of every sku new on that day, in one query per day
    skus_by_day: dict[date, set[str]] = {}
    for (sku, _), (day, _) in first_lines.items():
        skus_by_day.setdefault(day, set()).add(sku)
    lines: dict[tuple[date, str], list[asyncpg.Record]] = {}
    for day, skus in sorted(skus_by_day.items()):
        for row in await _lines(conn, sorted(skus), date.fromordinal(day.toordinal() - 1)):
            lines.setdefault((day, row["sku"]), []).append(row)
    out: dict[Item, LineFigures] = {}
    stored: dict[date, dict[Item, LineFigures]] = {}
    for item, (day, qty) in sorted(first_lines.items()):
        histories = _histories_of(lines.get((day, item[0]), ()))
        history = histories.get(item)
        if history is None:
            history = histories[item] = LineHistory(day.toordinal())
        history.add(day.toordinal(), qty)
        planner = _planner(settings, histories, state.priors)
        demand = planner.demand(item, day.toordinal())
        if demand.rate > 0 and demand.sizes:
            c = curve(demand, settings, state.scale)
            out[item] = stored.setdefault(day, {})[item] = figures_at(
                c, best_point(c, state.price), demand
            )
    for day, figures in sorted(stored.items()):
        await _store(conn, figures, day)
    return out


async def _store(conn: Connection, figures: dict[Item, LineFigures], day: date) -> None:
    if not figures:
        return
    keys = sorted(figures)
    f = [figures[k] for k in keys]
    await conn.execute(
        "INSERT INTO replenishment_plans (sku, location, reorder_point, order_up_to,"
        " expected_fill, expected_units, lines_per_day, mean_line_size, daily_demand, ltd_p50,"
        " ltd_p90, ltd_p99, planned_for)"
        " SELECT *, $13::date FROM unnest($1::text[], $2::text[], $3::int[], $4::int[],"
        " $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::int[],"
        " $11::int[], $12::int[])"
        " ON CONFLICT (sku, location) DO UPDATE SET reorder_point = EXCLUDED.reorder_point,"
        " order_up_to = EXCLUDED.order_up_to, expected_fill = EXCLUDED.expected_fill,"
        " expected_units = EXCLUDED.expected_units, lines_per_day = EXCLUDED.lines_per_day,"
        " mean_line_size = EXCLUDED.mean_line_size, daily_demand = EXCLUDED.daily_demand,"
        " ltd_p50 = EXCLUDED.ltd_p50, ltd_p90 = EXCLUDED.ltd_p90, ltd_p99 = EXCLUDED.ltd_p99,"
        " planned_for = EXCLUDED.planned_for, computed_at = now()",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [x.reorder_point for x in f],
        [x.order_up_to for x in f],
        [x.expected_fill for x in f],
        [x.expected_units for x in f],
        [x.lines_per_day for x in f],
        [x.mean_line_size for x in f],
        [x.daily_demand for x in f],
        [x.ltd_quantiles.get("p50", 0) for x in f],
        [x.ltd_quantiles.get("p90", 0) for x in f],
        [x.ltd_quantiles.get("p99", 0) for x in f],
        day,
    )


def plan_of(row: Mapping[str, Any] | asyncpg.Record) -> LineFigures | None:
    """The stored figures of an item (columns of replenishment_plans), None when unplanned."""
    if row["reorder_point"] is None:
        return None
    return LineFigures(
        reorder_point=row["reorder_point"],
        order_up_to=row["order_up_to"],
        expected_fill=row["expected_fill"],
        expected_units=row["expected_units"],
        lines_per_day=row["lines_per_day"],
        mean_line_size=row["mean_line_size"],
        daily_demand=row["plan_daily_demand"],
        ltd_quantiles={"p50": row["ltd_p50"], "p90": row["ltd_p90"], "p99": row["ltd_p99"]},
    )


PLAN_COLUMNS = (
    "pl.reorder_point, pl.order_up_to, pl.expected_fill, pl.expected_units, pl.lines_per_day,"
    " pl.mean_line_size, pl.daily_demand AS plan_daily_demand, pl.ltd_p50, pl.ltd_p90,"
    " pl.ltd_p99, pl.planned_for"
)
"""The columns :func:`plan_of` reads, from ``replenishment_plans pl``."""
