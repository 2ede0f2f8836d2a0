"""How a comparison of policies is shown and written: the table of one run per policy, and the
frontier (every policy at each of its settings, with a progress bar, the tables of units needed at
each fill rate, the JSON and the PNG). Shared by ``python -m simulation`` and
``stockledger backtest``, which differ only in where the history comes from."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import frontier
from .closed_loop import SimConfig


def results_table(results: list[dict[str, Any]], title: str) -> Table:
    """One row per policy run: line fill rate, average units held, requests (of which
    transfers), stockout days; and line fill and units from a day on, for runs that report
    them (``"later"``: :meth:`SimResult.period`)."""
    table = Table(title=title)
    columns = ["policy", "line fill rate", "avg units held"]
    later = results[0].get("later") if results else None
    if later:
        columns += [f"line fill from {later['from']}", f"avg units from {later['from']}"]
    for column in (*columns, "requests (transfers)", "stockout item-days"):
        table.add_column(column, justify="right")
    for r in results:
        shown = [r["policy"], f"{r['line_fill_rate']:.3f}", f"{r['average_units_held']:,.0f}"]
        if later:
            shown += [
                f"{r['later']['line_fill_rate']:.3f}",
                f"{r['later']['average_units_held']:,.0f}",
            ]
        table.add_row(
            *shown,
            f"{r['requests']:,}" + (f" ({r['transfers']:,})" if r.get("transfers") else ""),
            f"{r['stockout_item_days']:,}",
        )
    return table


def frontier_report(
    events: list[dict[str, Any]],
    base: SimConfig,
    policies: tuple[str, ...],
    *,
    split: date | None,
    jobs: int,
    plot: Path,
    json_path: Path,
    title: str,
    options: dict[str, str],
    console: Console,
) -> dict[str, Any]:
    """Sweep every policy's settings over ``events`` (figures from ``split`` on reported apart as
    well), print the units each needs at each fill rate, and write the JSON and the PNG; returns
    what the JSON holds."""
    base = replace(base, report_from=split)
    runs = sum(len(frontier.SETTINGS[p]) for p in policies)
    with Progress(
        TextColumn("frontier"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("frontier", total=runs, last="")

        def step(point: dict[str, Any]) -> None:
            figures = point["all"]
            progress.update(
                task,
                advance=1,
                last=f"{point['policy']} {point['setting']:g}: fill"
                f" {figures['line_fill_rate']:.3f}, {figures['average_units_held']:,.0f} units",
            )

        points = frontier.sweep(events, base, policies, jobs=jobs, progress=step)
    periods = ("all", "early", "late") if split else ("all",)
    report = {p: frontier.comparison(points, p) for p in periods}
    lowest = {p: frontier.lowest_margin(points, p) for p in periods}
    for period in periods:
        table = Table(title=f"units needed at each line fill rate: {period}")
        table.add_column("line fill")
        for policy in policies:
            table.add_column(policy, justify="right")
        table.add_column("lines vs best baseline", justify="right")
        for fill, row in report[period].items():
            saving = row["lines_saving"]
            table.add_row(
                fill,
                *("-" if row["units"].get(p) is None else f"{row['units'][p]:,}" for p in policies),
                "-" if saving is None else f"{saving:.1%} fewer",
            )
        console.print(table)
        console.print(lowest_margin_line(lowest[period]))
    frontier.plot(points, plot, title + (f", split at {split}" if split else ""))
    written = {
        "options": options,
        "split": str(split) if split else None,
        "points": points,
        "units_at_fill": report,
        "lowest_margin": lowest,
    }
    json_path.write_text(json.dumps(written, indent=2) + "\n")
    console.print(f"written: {json_path}, {plot}")
    return written


def lowest_margin_line(lowest: dict[str, Any] | None) -> str:
    """One line on where ``lines`` saves the least over the best baseline (or why not said)."""
    if lowest is None:
        return (
            f"lowest margin: not measured (no fill from {frontier.FILL_RATES[0]:.2f} on that"
            " lines and a baseline both reach)"
        )
    gap = ""
    if lowest["lines_missing"]:
        gap = (
            f"; at {lowest['lines_missing']:,} fills a baseline reaches lines has no figure (its"
            f" curve spans {lowest['lines_from']:.4f} to {lowest['lines_to']:.4f})"
        )
    return (
        f"lowest margin from {lowest['from']:.2f} to {lowest['to']:.4f} (the highest fill a"
        f" baseline reaches), every {lowest['step']:g}: {lowest['lines_saving']:.2%} fewer units"
        f" at {lowest['fill']:.4f}, {lowest['lines_units']:,} against {lowest['best_baseline']}'s"
        f" {lowest['best_baseline_units']:,}{gap}"
    )
