"""A progress bar for long benchmark steps (rich), quiet when output is not a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, what: str, total: int) -> None:
        self.bar = RichProgress(
            TextColumn(f"{what:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self.task = self.bar.add_task(what, total=total)

    def __enter__(self) -> Progress:
        self.bar.start()
        return self

    def update(self, completed: int) -> None:
        self.bar.update(self.task, completed=completed)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.stop()
