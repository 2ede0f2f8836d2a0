"""The benchmark at its smoke size, so that it keeps working (figures come from make bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

from ..conftest import ROOT, Servers

pytestmark = pytest.mark.integration


def run_and_read(servers: Servers, args: list[str], written: str) -> Any:
    """``python -m <args>`` against the test's servers; the JSON file it wrote under
    bench/results/ (matching ``written``), read and removed."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "DATABASE_URL": servers.database_url,
    }
    before = set((ROOT / "bench/results").glob(written))
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [path] = set((ROOT / "bench/results").glob(written)) - before
    try:
        return orjson.loads(path.read_bytes())
    finally:
        path.unlink()


def test_the_benchmark_runs_end_to_end_and_writes_its_figures(servers: Servers) -> None:
    results = run_and_read(servers, ["bench", "--smoke"], "2*.json")
    assert results["ledger_ingest"]["per_second"] > 0
    assert results["ratios"]["ledger_ingest_over_raw_copy"] > 0
    planning = results["end_to_end_sustained"]["planning_pass"]
    assert planning["items"] > 0
    assert planning["cpu_seconds_per_1000_items"] > 0


def test_the_load_run_reports_latency_and_memory_over_time(servers: Servers) -> None:
    args = ["bench.load", "--rate=200", "--minutes=0.2", "--interval=4"]
    report = run_and_read(servers, args, "load-*.json")
    assert report["achieved"]["sent"] == 200 * 12
    assert report["probes_seen"] == report["probes"] == 200 * 12 // 10
    assert len(report["windows"]) >= 3
    for window in report["windows"]:
        assert window["p99_ms"] >= window["p50_ms"] > 0
        assert set(window["rss_mib"]) == {"ledger", "relay", "projector", "replenisher"}
