"""The operator's command line and the simulation, run as a person runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from shared.settings import Settings

from .. import events as ev
from ..conftest import Servers
from ..kafka_io import eventually
from ..services import running, with_port
from .test_projector import caught_up

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "STOCKLEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "STOCKLEDGER_API": f"http://127.0.0.1:{settings.http_port}",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_events_published_from_a_file_show_up_in_stock_and_history(
    settings: Settings, tmp_path: Path
) -> None:
    settings = with_port(settings)
    events = [
        ev.received("BANK CHARGES", "UK", 12),
        ev.placed("O-1", "UK", [("1", "BANK CHARGES", 5)]),
    ]
    lines = [orjson.dumps(e) for e in events] + [b'{"not": "an event"}']
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    async with running(create_ledger(settings)), running(create_projector(settings)):
        published = await asyncio.to_thread(
            cli, settings, "publish", str(tmp_path / "events.jsonl")
        )
        assert published.returncode == 0, published.stderr
        assert "published 2 events, 1 refused" in published.stdout
        await eventually(lambda: caught_up(settings))
        stock = await asyncio.to_thread(cli, settings, "stock", "BANK CHARGES")
        history = await asyncio.to_thread(cli, settings, "history", "BANK CHARGES", "UK")
        unknown = await asyncio.to_thread(cli, settings, "stock", "NOPE")
    assert stock.returncode == 0, stock.stderr
    assert "12" in stock.stdout
    assert "7" in stock.stdout
    assert "receipt" in history.stdout
    assert "commitment" in history.stdout
    assert unknown.returncode == 1
    assert "404 unknown_sku" in unknown.stdout


def simulate(out: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``python -m simulation`` on the first 3,000 rows of the history: its results."""
    done = subprocess.run(
        [sys.executable, "-m", "simulation", "--rows", "3000", "--json", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return list(orjson.loads(out.read_bytes())["results"])


def test_the_simulation_runs_on_a_slice_of_the_history_and_writes_its_figures(
    tmp_path: Path,
) -> None:
    results = {r["policy"]: r for r in simulate(tmp_path / "sim.json")}
    assert set(results) == {"lines", "normal", "static", "min_max"}
    for r in results.values():
        assert 0 < r["line_fill_rate"] <= 1
        assert r["order_lines"] > 1000


def test_the_simulation_reports_the_days_from_a_given_day_apart(tmp_path: Path) -> None:
    # the first 15,000 rows: 2010-12-01 to 2010-12-07
    args = ("--rows", "15000", "--policy", "lines", "--report-from", "2010-12-03")
    (whole,) = simulate(tmp_path / "sim.json", *args)
    later = whole["later"]
    assert (later["from"], later["to"], later["days"]) == ("2010-12-03", "2010-12-07", 5)
    assert 0 < later["order_lines"] < whole["order_lines"]
    assert 0 < later["line_fill_rate"] <= 1


def test_the_frontier_writes_each_policy_at_each_setting_and_the_plot(tmp_path: Path) -> None:
    out, plot = tmp_path / "frontier.json", tmp_path / "frontier.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulation",
            "--rows",
            "4000",
            "--frontier",
            "--split-months",
            "0",
            "--policy",
            "static",
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    points = report["points"]
    assert [p["setting"] for p in points] == [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
    held = [p["all"]["average_units_held"] for p in points]
    assert held == sorted(held)  # more days of cover, more units
    assert set(report["units_at_fill"]["all"]) == {"0.75", "0.80", "0.85", "0.90"}
    assert report["lowest_margin"] == {"all": None}  # lines was not run: nothing is claimed
    assert "lowest margin: not measured" in done.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_the_simulation_through_the_stack_runs_the_services_and_loses_no_order_line(
    tmp_path: Path, servers: Servers
) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers.kafka}
    env["DATABASE_URL"] = servers.database_url
    out = tmp_path / "sim.json"
    [stack] = simulate(out, "--policy", "static", "--through-stack", env=env)
    [in_process] = simulate(out, "--policy", "static")
    assert stack["mode"] == "through the stack"
    assert stack["order_lines_in_ledger"] == in_process["order_lines"]  # none lost on the way
    assert stack["order_lines"] >= 0.95 * in_process["order_lines"]  # committed when placed
    assert stack["days"] == in_process["days"]
    assert 0 < stack["line_fill_rate"] <= 1
    assert stack["requests"] > 0
    assert stack["stockout_item_days"] > 0  # a day of backorders on a half-day opening stock
    assert stack["average_units_held"] >= 0
