"""Recomputes the ``normal`` policy's forecasts from the demand history.

Each pass reads the daily demand of every item, a few thousand skus at a time, fits the
forecast methods (:mod:`.forecast`), and stores the winner with its figures; it also refreshes
the reorder points the API's below_reorder_point filter reads. Time is event time: a series
ends on the day the pass is for, so a replay of old history forecasts as if it were then.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date

import asyncpg

from .adapters.store import forecast_of
from .forecast import Forecast, forecast_many
from .planning import PLAN_COLUMNS, plan_of
from .policy import Policy, figures_for

CHUNK_SKUS = 2000


async def refresh_forecasts(
    pool: asyncpg.Pool,
    default_policy: Policy,
    progress: Callable[[int, int], None] | None = None,
    today: date | None = None,
) -> dict[str, float]:
    """One pass over every item with demand up to ``today`` (event time; default: the latest
    day with demand), a few thousand skus at a time so memory stays flat; returns how many were
    forecast and the mean error."""
    started = time.perf_counter()
    if today is None:
        today = await pool.fetchval("SELECT max(day) FROM demand_daily")
    if today is None:
        return {"items": 0, "mean_mae": 0.0, "seconds": time.perf_counter() - started}
    skus = [
        r["sku"]
        for r in await pool.fetch(
            "SELECT DISTINCT sku FROM demand_daily WHERE day <= $1 ORDER BY sku", today
        )
    ]
    errors: list[float] = []
    for at in range(0, len(skus), CHUNK_SKUS):
        chunk = skus[at : at + CHUNK_SKUS]
        rows = await pool.fetch(
            "SELECT sku, location, day, units FROM demand_daily"
            " WHERE sku = ANY($1::text[]) AND day <= $2",
            chunk,
            today,
        )
        series: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
        for r in rows:
            series[(r["sku"], r["location"])][r["day"]] = r["units"]
        items = sorted(series)
        histories = []
        for key in items:
            days = series[key]
            start = min(days)
            span = (today - start).days + 1
            histories.append(
                [float(days.get(date.fromordinal(start.toordinal() + i), 0)) for i in range(span)]
            )
        results = {
            k: f for k, f in zip(items, forecast_many(histories), strict=True) if f is not None
        }
        await _store_forecasts(pool, results)
        errors += [r.holdout_mae for r in results.values()]
        if progress:
            progress(min(at + CHUNK_SKUS, len(skus)), len(skus))
    await refresh_reorder_points(pool, default_policy)
    return {
        "items": len(errors),
        "mean_mae": sum(errors) / len(errors) if errors else 0.0,
        "seconds": time.perf_counter() - started,
    }


async def _store_forecasts(pool: asyncpg.Pool, results: dict[tuple[str, str], Forecast]) -> None:
    keys = sorted(results)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO replenishment_forecasts (sku, location, method, daily_demand, demand_sd,"
            " holdout_mae, history_days, demand_size) SELECT * FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::int[],"
            " $8::float8[])"
            " ON CONFLICT (sku, location) DO UPDATE SET method = EXCLUDED.method,"
            " daily_demand = EXCLUDED.daily_demand, demand_sd = EXCLUDED.demand_sd,"
            " holdout_mae = EXCLUDED.holdout_mae, history_days = EXCLUDED.history_days,"
            " demand_size = EXCLUDED.demand_size, computed_at = now()",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [results[k].method for k in keys],
            [results[k].daily_demand for k in keys],
            [results[k].demand_sd for k in keys],
            [results[k].holdout_mae for k in keys],
            [results[k].history_days for k in keys],
            [results[k].demand_size for k in keys],
        )


async def refresh_reorder_points(pool: asyncpg.Pool, default_policy: Policy) -> None:
    """The reorder point in force per item, for the API's below_reorder_point filter."""
    rows = await pool.fetch(
        "SELECT i.sku, i.location, p.policy, f.method, f.daily_demand, f.demand_sd,"
        f" f.holdout_mae, f.history_days, f.demand_size, {PLAN_COLUMNS}"
        " FROM replenisher_items i"
        " LEFT JOIN replenishment_policies p USING (sku, location)"
        " LEFT JOIN replenishment_forecasts f USING (sku, location)"
        " LEFT JOIN replenishment_plans pl USING (sku, location)"
    )
    points = []
    for r in rows:
        policy = Policy.model_validate_json(r["policy"]) if r["policy"] else default_policy
        figures = figures_for(policy, forecast_of(r), plan_of(r))
        if figures is not None:
            points.append((r["sku"], r["location"], figures.reorder_point))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM reorder_points")
        await conn.copy_records_to_table(
            "reorder_points", records=points, columns=["sku", "location", "reorder_point"]
        )
