"""``python -m services.projector [serve|rebuild]``: run the projector and its HTTP API, or
rebuild the read model from the ledger (the API keeps answering meanwhile)."""

from __future__ import annotations

import argparse
import asyncio

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from shared.runner import run_service
from shared.settings import Settings

from .app import create_service
from .rebuild import rebuild


def rebuild_with_progress(settings: Settings) -> None:
    with Progress(
        "rebuilding the read model", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("rebuild", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = asyncio.run(rebuild(settings.database_dsn(), progress=progress))
    print(
        f"rebuilt {result.items:,} items from {result.entries:,} ledger entries in "
        f"{result.seconds:.1f}s ({result.entries_per_second:,.0f} entries/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.projector", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "rebuild"])
    args = parser.parse_args()
    settings = Settings()
    if args.command == "rebuild":
        rebuild_with_progress(settings)
    else:
        run_service(create_service(settings), settings)


if __name__ == "__main__":
    main()
