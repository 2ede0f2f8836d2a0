"""``stockledger``: the operator's command line (``stockledger COMMAND --help`` for each).

It talks to the running suite as a client would: events go to Kafka, questions to the HTTP API
(``STOCKLEDGER_API`` or http://127.0.0.1:8080). Rebuild, forecast and backtest run against
PostgreSQL directly, like the services' own commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from .events.codec import Rejection, decode
from .levels import STATES
from .settings import Settings
from .topics import ORDERS, REPLENISHMENT_UPDATES, SCANS

TOPICS = {"scan": SCANS, "order": ORDERS, "replenishment": REPLENISHMENT_UPDATES}
console = Console()


def api() -> httpx.Client:
    base = os.environ.get("STOCKLEDGER_API", "http://127.0.0.1:8080")
    return httpx.Client(base_url=base, timeout=30)


def answer(response: httpx.Response) -> Any:
    body = response.json()
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code} {body.get('error')}[/]: {body.get('detail')}")
        sys.exit(1)
    return body


def read_events(path: Path) -> Iterator[bytes]:
    """JSON lines, or one JSON array of events."""
    text = path.read_bytes()
    if text.lstrip().startswith(b"["):
        for event in orjson.loads(text):
            yield orjson.dumps(event)
        return
    for line in text.splitlines():
        if line.strip():
            yield line.strip()


def key_of(event: Any) -> bytes:
    d = event.data
    order_id = getattr(d, "order_id", None)
    if event.type.startswith("order.") and order_id:
        return str(order_id).encode()
    request_id = getattr(d, "request_id", None)
    if request_id:
        return str(request_id).encode()
    location = getattr(d, "location", None) or getattr(d, "to_location", "")
    return f"{location}|{d.sku}".encode()


async def publish(path: Path, settings: Settings) -> None:
    from aiokafka import AIOKafkaProducer

    from .kafka import client_options

    messages = list(read_events(path))
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True, linger_ms=5)
    await producer.start()
    refused = 0
    try:
        with Progress(
            "publishing", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("publish", total=len(messages))
            futures = []
            for n, value in enumerate(messages, 1):
                event = decode(value)
                if isinstance(event, Rejection):
                    console.print(f"[yellow]line {n} not sent[/]: {event.reason}: {event.detail}")
                    refused += 1
                    continue
                topic = settings.topic_prefix + TOPICS[event.type.split(".")[0]]
                futures.append(await producer.send(topic, value, key=key_of(event)))
                bar.update(task, completed=n)
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    console.print(f"published {len(messages) - refused:,} events, {refused:,} refused")


LEVEL_COLUMNS = ("location", *STATES, "available")


def show_levels(body: Any) -> None:
    levels = (
        body["locations"] + [{"location": "total", **body["total"]}]
        if "locations" in body
        else [body]
    )
    table = Table()
    for column in LEVEL_COLUMNS:
        table.add_column(column, justify="right")
    for level in levels:
        table.add_row(*(str(level.get(c, "")) for c in LEVEL_COLUMNS))
    console.print(table)


def backtest(args: argparse.Namespace, settings: Settings) -> None:
    from simulation import backtest as bt

    try:
        policies = bt.parse_policies(args.policy)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        sys.exit(2)
    if args.months is not None and args.months < 1:
        console.print("[red]--months must be at least 1[/]")
        sys.exit(2)
    options = bt.Options(
        policies=policies,
        months=args.months,
        point=args.point,
        split_months=args.split_months,
        jobs=args.jobs,
        json_path=args.json,
        plot=args.plot,
        lead_time_days=args.lead_time_days,
        review_days=args.review_days,
        backorders=args.backorders,
    )
    try:
        bt.backtest(settings.database_dsn(), options, console)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            console.print(f"[red]{exc.code}[/]")
            sys.exit(1)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stockledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("publish", help="publish contract events from a file (JSON lines)")
    p.add_argument("file", type=Path)
    p = commands.add_parser("stock", help="show the stock of a sku (every location, or one)")
    p.add_argument("sku")
    p.add_argument("--location")
    p.add_argument("--as-of", help="RFC 3339 time: the stock as it stood then (needs --location)")
    p = commands.add_parser("history", help="show an item's ledger entries")
    p.add_argument("sku")
    p.add_argument("location")
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--limit", type=int, default=50)
    commands.add_parser(
        "rebuild", help="rebuild the read model from the ledger (API keeps serving)"
    )
    p = commands.add_parser("policy", help="show, or set with --set JSON, an item's policy")
    p.add_argument("sku")
    p.add_argument("location")
    p.add_argument(
        "--set",
        dest="policy",
        help='e.g. \'{"policy": "min_max", "min_qty": 5, ...}\' (token from STOCKLEDGER_API_TOKEN)',
    )
    p = commands.add_parser("requests", help="show replenishment requests")
    p.add_argument("--status", choices=["open", "closed"])
    p.add_argument("--sku")
    p.add_argument("--location")
    commands.add_parser("forecast", help="recompute every forecast now")
    p = commands.add_parser(
        "backtest",
        help="what replenishment policies would have done on the demand the ledger recorded",
        description="Rebuild the orders, shipments, cancellations and adjustments the ledger"
        " (PostgreSQL, DATABASE_URL) recorded and run the closed-loop simulation on them: by"
        " default each policy at several settings (fill against units held: a table, the JSON"
        " and a PNG), with --point once per policy at its default setting.",
    )
    p.add_argument(
        "--policy",
        action="append",
        help="lines, normal, static, min_max (repeat it, or a comma list; default: all four)",
    )
    p.add_argument("--months", type=int, help="the last N months of the ledger's event time")
    p.add_argument("--point", action="store_true", help="one run per policy, default setting")
    p.add_argument(
        "--split-months",
        type=int,
        default=4,
        help="report the months after the first N apart (0: no split; default: %(default)s)",
    )
    p.add_argument("--jobs", type=int, default=2, help="processes (default: %(default)s)")
    p.add_argument(
        "--json",
        type=Path,
        default=Path("backtest-results.json"),
        help="where to write the figures (default: %(default)s)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=Path("backtest-frontier.png"),
        help="the frontier's PNG (default: %(default)s)",
    )
    p.add_argument("--lead-time-days", type=int, default=7, help="(default: %(default)s)")
    p.add_argument("--review-days", type=int, default=7, help="(default: %(default)s)")
    p.add_argument(
        "--backorders",
        action="store_true",
        help="every order line is taken and a short one backordered, as the ledger does; by"
        " default a line stock cannot cover is lost (as python -m simulation --backorders)",
    )
    commands.add_parser(
        "simulate", help="compare replenishment policies (see its own --help)", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    settings = Settings()
    if args.command == "simulate":
        from simulation.__main__ import main as simulate

        sys.argv = ["stockledger simulate", *rest]
        simulate()
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    elif args.command == "publish":
        asyncio.run(publish(args.file, settings))
    elif args.command == "stock":
        query = {"sku": args.sku, "location": args.location, "as_of": args.as_of}
        with api() as client:
            show_levels(
                answer(client.get("/v1/stock", params={k: v for k, v in query.items() if v}))
            )
    elif args.command == "history":
        with api() as client:
            body = answer(
                client.get(
                    "/v1/stock/ledger",
                    params={
                        "sku": args.sku,
                        "location": args.location,
                        "after": args.after,
                        "limit": args.limit,
                    },
                )
            )
        table = Table()
        for column in ("position", "occurred_at", "kind", "deltas", "source_type", "reference"):
            table.add_column(column)
        for e in body["entries"]:
            deltas = ", ".join(f"{k} {v:+d}" for k, v in e["deltas"].items() if v)
            table.add_row(
                str(e["position"]),
                e["occurred_at"],
                e["kind"],
                deltas,
                e["source_type"],
                e.get("reference") or "",
            )
        console.print(table)
        if body["next_after"]:
            console.print(f"more: --after {body['next_after']}")
    elif args.command == "rebuild":
        from services.projector.__main__ import rebuild_with_progress

        rebuild_with_progress(settings)
    elif args.command == "policy":
        with api() as client:
            where = {"sku": args.sku, "location": args.location}
            if args.policy:
                token = os.environ.get(
                    "STOCKLEDGER_API_TOKEN", settings.api_token.get_secret_value()
                )
                answer(
                    client.put(
                        "/v1/policies",
                        params=where,
                        content=args.policy,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )
            console.print_json(json.dumps(answer(client.get("/v1/policies", params=where))))
    elif args.command == "requests":
        query = {"status": args.status, "sku": args.sku, "location": args.location}
        with api() as client:
            body = answer(
                client.get(
                    "/v1/replenishment/requests", params={k: v for k, v in query.items() if v}
                )
            )
        table = Table()
        for column in ("request_id", "sku", "location", "qty", "kind", "status", "needed_by"):
            table.add_column(column)
        for r in body["requests"]:
            table.add_row(
                *(
                    str(r[c])
                    for c in ("request_id", "sku", "location", "qty", "kind", "status", "needed_by")
                )
            )
        console.print(table)
    elif args.command == "forecast":
        from services.replenisher.__main__ import forecast_now

        asyncio.run(forecast_now(settings))
    elif args.command == "backtest":
        backtest(args, settings)


if __name__ == "__main__":
    main()
