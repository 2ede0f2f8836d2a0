"""``python -m simulation``: compare replenishment policies on an order history, closed loop.

Prints, per policy, the line fill rate, average units held, requests and stockout item-days,
and writes them as JSON. With ``--frontier`` each policy runs at several settings and the
figures are read as a frontier (line fill against units held): the units each policy needs at
fill rates 0.75 to 0.90, in a table, the JSON and a PNG; with ``--split-months`` (default 4)
the months after the first ones are reported apart, as the out-of-sample check.

By default the services' pure rules run in this process, and the same
history and options give the same figures. With ``--through-stack`` the history goes through the
services themselves (Kafka and PostgreSQL must be running), a day at a time as fast as they
settle; see ``simulation/stack.py`` for how its figures differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.retail import CSV_HELP, DATA, RetailFormatError, retail_events
from services.replenisher.lines import DEFAULT_TARGET_FILL

from . import frontier, report
from .closed_loop import SimConfig, in_range, simulate
from .sample import parse_part, sku_part

POLICIES = ("lines", "normal", "static", "min_max")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulation", description=__doc__)
    parser.add_argument(
        "--csv",
        type=Path,
        default=DATA,
        help=CSV_HELP,
    )
    parser.add_argument("--policy", choices=(*POLICIES, "all"), default="all")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, help="first day")
    parser.add_argument("--to", dest="end", type=date.fromisoformat, help="last day")
    parser.add_argument(
        "--report-from",
        type=date.fromisoformat,
        help="also report line fill and units held from this day on (e.g. a month after the"
        " first day, as make demo reads them); not with --frontier, which has --split-months",
    )
    parser.add_argument("--rows", type=int, help="read only the first ROWS rows")
    parser.add_argument(
        "--sku-part",
        metavar="K/N",
        help="keep only the skus of the K-th of N disjoint parts of the catalogue (by a stable"
        " hash of the sku), e.g. 0/2 and 1/2: two brands' histories from one file",
    )
    parser.add_argument("--lead-time-days", type=int, default=7)
    parser.add_argument("--review-days", type=int, default=7)
    parser.add_argument("--service-level", type=float, default=0.98, help="normal")
    parser.add_argument(
        "--target-fill",
        type=float,
        default=DEFAULT_TARGET_FILL,
        help="lines: expected line fill, all items",
    )
    parser.add_argument(
        "--budget-units", type=float, help="lines: expected units held, instead of a target"
    )
    parser.add_argument(
        "--backorders",
        action="store_true",
        help="every order line is taken and a short one backordered, as the ledger does (the"
        " world of make demo); by default a line stock cannot cover is lost",
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="each policy at several settings: fill against units held (JSON and PNG)",
    )
    parser.add_argument(
        "--split-months",
        type=int,
        default=4,
        help="with --frontier: report the months after the first N apart (0: no split)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="with --frontier: processes")
    parser.add_argument(
        "--plot", type=Path, default=Path("frontier.png"), help="with --frontier: the PNG"
    )
    parser.add_argument(
        "--through-stack",
        action="store_true",
        help="run the services themselves, each policy in a scratch database and topics"
        " (needs Kafka and PostgreSQL: make up)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("simulation-results.json"),
        help="where to write the figures (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.report_from and (args.frontier or args.through_stack):
        parser.error("--report-from is for in-process runs (--frontier has --split-months)")

    started = time.perf_counter()
    try:
        events = [orjson.loads(v) for _, _, v in retail_events(args.csv, rows=args.rows)]
    except RetailFormatError as error:
        raise SystemExit(str(error)) from None
    events = list(in_range(events, args.start, args.end))
    if args.sku_part:
        try:
            events = list(sku_part(events, parse_part(args.sku_part)))
        except ValueError as error:
            raise SystemExit(f"--sku-part: {error}") from None
    console = Console()
    console.print(f"{len(events):,} events read in {time.perf_counter() - started:.1f}s")
    if not events:
        raise SystemExit("no events in that range")
    policies = POLICIES if args.policy == "all" else (args.policy,)
    base = SimConfig(
        lead_time_days=args.lead_time_days,
        review_days=args.review_days,
        service_level=args.service_level,
        target_fill=args.target_fill,
        budget_units=args.budget_units,
        backorders=args.backorders,
    )
    if args.frontier:
        run_frontier(events, base, policies, args, console)
        return
    results = []
    for policy in policies:
        config = replace(base, policy=policy)
        if args.through_stack:
            results.append(through_stack(events, config, console))
            continue
        with console.status(f"simulating {policy}"):
            t = time.perf_counter()
            result = simulate(events, config)
        summary = result.summary() | {"seconds": round(time.perf_counter() - t, 1)}
        if args.report_from:
            summary["later"] = {"from": args.report_from.isoformat()} | result.period(
                args.report_from
            )
        results.append(summary)

    where = (
        "through the stack"
        if args.through_stack
        else "closed loop, backorders"
        if args.backorders
        else "closed loop"
    )
    title = f"{where} on {history_name(args)}, lead time {args.lead_time_days} d"
    console.print(report.results_table(results, title))
    args.json.write_text(
        json.dumps(
            {"options": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2
        )
        + "\n"
    )
    console.print(f"written: {args.json}")


def history_name(args: argparse.Namespace) -> str:
    name: str = args.csv.name
    return name + (f", skus {args.sku_part}" if args.sku_part else "")


def run_frontier(
    events: list[dict[str, Any]],
    base: SimConfig,
    policies: tuple[str, ...],
    args: argparse.Namespace,
    console: Console,
) -> None:
    split = frontier.split_day(events, args.split_months) if args.split_months else None
    report.frontier_report(
        events,
        base,
        policies,
        split=split,
        jobs=args.jobs,
        plot=args.plot,
        json_path=args.json,
        title=f"{history_name(args)}: lead time {args.lead_time_days} d",
        options={k: str(v) for k, v in vars(args).items()},
        console=console,
    )


def through_stack(
    events: list[dict[str, Any]], config: SimConfig, console: Console
) -> dict[str, Any]:
    from bench.processes import stop_cleanly_on_sigterm

    from .demo import with_opening_stock
    from .stack import run_through_stack

    stop_cleanly_on_sigterm()  # services stopped, scratch database and topics dropped

    stocked = with_opening_stock(events, config.opening_days)
    with Progress(
        TextColumn(f"{config.policy} through the stack"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days, history at {task.fields[day]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(config.policy, total=None, day="-")

        def step(done: int, total: int, day: str) -> None:
            progress.update(task, completed=done, total=total, day=day)

        try:
            run = asyncio.run(run_through_stack(stocked, config, step))
        except (OSError, KafkaConnectionError) as exc:
            raise SystemExit(
                f"--through-stack needs Kafka and PostgreSQL running ({exc}): start them with"
                " `make up` (or deploy/scripts/stack.sh infra)"
            ) from exc
    return run.summary()


if __name__ == "__main__":
    main()
