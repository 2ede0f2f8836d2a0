"""The benchmark at its smoke size, so that it keeps working (figures come from make bench)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from ..conftest import ROOT, Servers

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_end_to_end_and_writes_its_figures(servers: Servers) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "DATABASE_URL": servers.database_url,
    }
    before = set((ROOT / "bench/results").glob("*.json"))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [written] = set((ROOT / "bench/results").glob("*.json")) - before
    try:
        results = orjson.loads(written.read_bytes())
    finally:
        written.unlink()
    assert results["ledger_ingest"]["per_second"] > 0
    assert results["ratios"]["ledger_ingest_over_raw_copy"] > 0
