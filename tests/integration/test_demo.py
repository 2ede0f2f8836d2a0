"""``python -m simulation.demo`` end to end: a history of six weeks replayed through the suite's
services, the summary printed with its figures after the first month, the plot written."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.replenisher.app import create_service as create_replenisher
from shared.settings import Settings

from ..services import ROOT, running, with_port

pytestmark = pytest.mark.integration

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice"]
COLUMNS += ["CustomerID", "Country"]


def six_weeks(path: Path) -> None:
    """Orders for three items, a few a day for 42 days, from two countries."""
    first = datetime(2011, 1, 3, 9, 0)
    with path.open("w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(COLUMNS)
        for day in range(42):
            for n, (sku, qty, country) in enumerate(
                [("MUG", 2, "United Kingdom"), ("CUP", 6, "France"), ("BOWL", 1, "United Kingdom")]
                * 2
            ):
                at = first + timedelta(days=day, minutes=37 * n)
                invoice, customer = f"{500000 + day * 10 + n}", f"{12000 + n}"
                when = f"{at:%Y-%m-%d %H:%M:%S}"
                rows.writerow(
                    [invoice, sku, sku.lower(), qty + day % 3, when, "1.25", customer, country]
                )


async def test_the_demo_replays_a_history_through_the_suite_and_prints_its_summary(
    settings: Settings, tmp_path: Path
) -> None:
    history, plot = tmp_path / "orders.csv", tmp_path / "demo.png"
    six_weeks(history)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "STOCKLEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "STOCKLEDGER_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
        "COLUMNS": "200",  # the summary's labels on one line each
    }
    async with (
        running(create_ledger(settings)),
        running(create_projector(with_port(settings))),
        running(create_replenisher(settings)),
    ):
        demo = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulation.demo",
            "--csv",
            str(history),
            "--speed",
            "10",
            "--plot",
            str(plot),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(demo.communicate(), timeout=300)
    text = output.decode(errors="replace")
    assert demo.returncode == 0, text[-4000:]
    summary = {
        cells[0]: cells[1:]
        for line in text.splitlines()
        if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 4
    }
    later = summary["average units on hand after the first month"]
    assert float(later[0].replace(",", "")) > 0  # live, over history time
    assert float(later[1].replace(",", "")) > 0  # simulated
    assert 0 < float(summary["line fill rate after the first month"][0]) <= 1
    assert plot.read_bytes().startswith(b"\x89PNG")
