"""``python -m services.replenisher [serve|forecast]``: run the replenisher, or plan every item
now, as of the latest day with demand (the service plans by itself as event time passes)."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from shared.runner import run_service
from shared.settings import Settings

from .app import create_service, plan_pass


async def forecast_now(settings: Settings) -> None:
    pool = await asyncpg.create_pool(settings.database_dsn(), min_size=1)
    try:
        today = await pool.fetchval("SELECT max(day) FROM demand_lines")
        if today is None:
            print("no demand recorded yet: nothing to plan")
            return
        with Progress("planning", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task("plan", total=None)
            result = await plan_pass(
                pool,
                settings,
                today,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        await pool.close()
    print(
        f"planned {result['items']:,.0f} items as of {today} in {result['seconds']:.1f}s:"
        f" expected line fill {result['expected_fill']:.3f},"
        f" {result['expected_units']:,.0f} units expected on hand"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.replenisher", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "forecast"])
    args = parser.parse_args()
    settings = Settings()
    if args.command == "forecast":
        asyncio.run(forecast_now(settings))
    else:
        run_service(create_service(settings), settings)


if __name__ == "__main__":
    main()
