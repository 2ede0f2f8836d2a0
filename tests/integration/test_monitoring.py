"""The dashboards and rules against the running services and a real Prometheus.

The four services run in-process on free ports and handle a few events (one of them
dead-lettered, and enough orders to raise a replenishment request). Their /metrics must hold every
metric the Grafana dashboards query; then Debian's Prometheus (installed by ``make setup``) scrapes
them every second with the suite's rules loaded, and the series come back through its API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from services.gateway.app import create_service as create_gateway
from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from services.replenisher.app import create_service as create_replenisher
from shared.settings import Settings
from shared.topics import SCANS

from .. import events as ev
from ..kafka_io import eventually, produce
from ..services import free_port, running, with_port
from ..unit.test_monitoring_files import (
    PROMETHEUS_SERIES,
    RULES_FILE,
    dashboard_exprs,
    dashboard_metric_names,
)
from .test_projector import publish

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
TOKEN = "test-token"
MIN_MAX = {"policy": "min_max", "min_qty": 10, "max_qty": 30, "lead_time_days": 2}
JOBS = ("gateway", "ledger", "projector", "replenisher")  # sorted


def prometheus_binary() -> str:
    """Debian's /usr/bin/prometheus (or one on PATH); a clear failure when there is none."""
    found = str(PROMETHEUS) if PROMETHEUS.is_file() else shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "Prometheus is not installed (no /usr/bin/prometheus): run `make setup` or "
            "deploy/scripts/setup-prometheus.sh (Debian: apt-get install prometheus)"
        )
    return found


@dataclass(frozen=True)
class Suite:
    ports: dict[str, int]  # scrape job name -> port serving its /metrics

    def metrics_url(self, job: str) -> str:
        return f"http://127.0.0.1:{self.ports[job]}/metrics"


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """Sample name -> the sum of its values, from one /metrics answer."""
    answer = await client.get(url)
    answer.raise_for_status()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


async def scrape_all(client: httpx.AsyncClient, suite: Suite) -> dict[str, dict[str, float]]:
    return {job: await scrape(client, suite.metrics_url(job)) for job in suite.ports}


def _busy(scraped: dict[str, dict[str, float]]) -> bool:
    """Every kind of event has gone through: a dead letter, entries, a request raised."""
    ledger, projector, replenisher = (
        scraped[job] for job in ("ledger", "projector", "replenisher")
    )
    return (
        ledger.get("stockledger_ledger_dead_lettered_total", 0) > 0
        and ledger.get("stockledger_ledger_entries_appended_total", 0) > 0
        and projector.get("stockledger_projector_entries_applied_total", 0) > 0
        and replenisher.get("stockledger_replenisher_entries_applied_total", 0) > 0
        and replenisher.get("stockledger_replenisher_requests_total", 0) > 0
    )


@contextlib.asynccontextmanager
async def busy_suite(settings: Settings) -> AsyncIterator[Suite]:
    """The four services on free ports, once they have handled a few events of every kind."""
    settings = settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "forecast_interval_s": 1.0}
    )
    projector = with_port(settings)
    ledger = settings.model_copy(update={"metrics_port": free_port()})
    replenisher = settings.model_copy(update={"metrics_port": free_port()})
    gateway = settings.model_copy(update={"gateway_port": free_port()})
    suite = Suite(
        {
            "ledger": ledger.metrics_port,
            "projector": projector.http_port,
            "replenisher": replenisher.metrics_port,
            "gateway": gateway.gateway_port,
        }
    )
    async with (
        running(create_ledger(ledger)),
        running(create_projector(projector)),
        running(create_replenisher(replenisher)),
        running(create_gateway(gateway)),
        httpx.AsyncClient(timeout=10) as client,
    ):
        policy = await client.put(
            f"http://127.0.0.1:{projector.http_port}/v1/policies",
            params={"sku": "MUG", "location": "UK"},
            json=MIN_MAX,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert policy.status_code == 200, policy.text
        await publish(settings, [ev.received("MUG", "UK", 30), ev.received("CUP", "EU", 3)])
        await publish(settings, [ev.placed(f"O{n}", "UK", [("1", "MUG", 5)]) for n in range(5)])
        await produce(
            settings.kafka_bootstrap_servers, settings.topic_prefix + SCANS, [(b"k", b"{")]
        )

        async def busy() -> bool:
            return _busy(await scrape_all(client, suite))

        await eventually(busy, seconds=60)
        yield suite


async def test_the_running_services_export_every_metric_the_dashboards_query(
    settings: Settings,
) -> None:
    used = dashboard_metric_names() - PROMETHEUS_SERIES
    async with busy_suite(settings) as suite, httpx.AsyncClient(timeout=10) as client:
        scraped = await scrape_all(client, suite)
    for job, samples in scraped.items():
        assert any(name.startswith(f"stockledger_{job}_") for name in samples), job
    exported = {name for samples in scraped.values() for name in samples}
    missing = used - exported
    assert not missing, f"dashboard panels query metrics no service exports: {sorted(missing)}"


# ------------------------------------------------------------------ a real Prometheus


def prometheus_config(suite: Suite) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in suite.ports.items()
        ],
    }


@dataclass
class Prometheus:
    api: httpx.AsyncClient
    process: asyncio.subprocess.Process
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def prometheus_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Prometheus' log file, open for writing; its config and data go next to it."""
    with (tmp_path / "prometheus.log").open("wb") as log:
        yield log


@contextlib.asynccontextmanager
async def prometheus(binary: str, log: IO[bytes], suite: Suite) -> AsyncIterator[Prometheus]:
    """A Prometheus scraping the suite with the suite's rules; killed at the end."""
    folder = Path(log.name).parent
    config = folder / "prometheus.json"  # JSON is YAML, so Prometheus reads it
    config.write_text(json.dumps(prometheus_config(suite)))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            yield Prometheus(api, process, Path(log.name))
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def query(api: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    answer = await api.get("/api/v1/query", params={"query": promql})
    body = answer.json()
    assert answer.status_code == 200, (promql, body)
    assert body["status"] == "success", (promql, body)
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


async def all_up(prom: Prometheus) -> bool:
    if prom.process.returncode is not None:
        pytest.fail(f"Prometheus exited with {prom.process.returncode}:\n{prom.log_tail()}")
    try:
        result = await query(prom.api, "up")
    except httpx.TransportError:
        return False  # not listening yet
    return {r["metric"]["job"] for r in result if r["value"][1] == "1"} == set(JOBS)


async def rules_evaluated(api: httpx.AsyncClient) -> bool:
    groups = (await api.get("/api/v1/rules")).json()["data"]["groups"]
    health = [rule["health"] for group in groups for rule in group["rules"]]
    return bool(health) and "unknown" not in health


async def value_of(api: httpx.AsyncClient, promql: str) -> float:
    result = await query(api, promql)
    return sum(float(r["value"][1]) for r in result)


async def test_prometheus_scrapes_the_services_and_evaluates_the_rules(
    settings: Settings, prometheus_log: IO[bytes]
) -> None:
    binary = prometheus_binary()
    async with busy_suite(settings) as suite, prometheus(binary, prometheus_log, suite) as prom:
        try:
            await eventually(lambda: all_up(prom), seconds=60)
        except TimeoutError:
            pytest.fail(
                f"Prometheus never saw the {len(JOBS)} targets up; its log:\n{prom.log_tail()}"
            )
        api = prom.api
        up = await query(api, "up")
        assert sorted(r["metric"]["job"] for r in up) == list(JOBS)

        assert await value_of(api, "stockledger_ledger_entries_appended_total") > 0
        assert await value_of(api, "stockledger_projector_entries_applied_total") > 0
        assert await value_of(api, "stockledger_replenisher_entries_applied_total") > 0
        dead = await query(api, "stockledger_ledger_dead_lettered_total")
        assert {(r["metric"]["reason"], r["metric"]["job"]) for r in dead} == {
            ("invalid_json", "ledger")
        }
        requests = await query(api, "stockledger_replenisher_requests_total")
        assert {(r["metric"]["kind"], r["metric"]["policy"]) for r in requests} == {
            ("purchase", "min_max")
        }

        # The rules load and evaluate without error against the live series.
        await eventually(lambda: rules_evaluated(api), seconds=30)
        groups = (await api.get("/api/v1/rules")).json()["data"]["groups"]
        broken = [
            (rule["name"], rule.get("lastError"))
            for group in groups
            for rule in group["rules"]
            if rule["health"] != "ok"
        ]
        assert not broken
        assert {g["name"] for g in groups} >= {"stockledger.throughput", "stockledger.alerts"}

        async def recorded() -> bool:
            result = await query(api, "job:stockledger_ledger_entries_appended:rate1m")
            return [r["metric"] for r in result] == [
                {"__name__": "job:stockledger_ledger_entries_appended:rate1m", "job": "ledger"}
            ]

        await eventually(recorded, seconds=30)

        # Every dashboard query is valid PromQL for this Prometheus.
        for expr in dashboard_exprs():
            grafana = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
            await query(api, grafana)
