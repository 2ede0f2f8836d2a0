"""``python -m services.replenisher [serve|forecast]``: run the replenisher, or recompute every
forecast now (the service also does so on a schedule)."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from shared.runner import run_service
from shared.settings import Settings

from .app import create_service, default_policy
from .forecasting import refresh_forecasts


async def forecast_now(settings: Settings) -> None:
    pool = await asyncpg.create_pool(settings.database_dsn(), min_size=1)
    try:
        with Progress("forecasting", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task("forecast", total=None)
            result = await refresh_forecasts(
                pool,
                default_policy(settings),
                lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        await pool.close()
    print(
        f"forecast {result['items']:,.0f} items in {result['seconds']:.1f}s,"
        f" mean held-out error {result['mean_mae']:.3f} units/day"
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
