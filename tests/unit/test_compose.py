"""The Docker Compose setup agrees with the code it runs, checked by reading files (no Docker)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.roles import ROLES, password_variable
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARDS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

OUR_PACKAGES = ("services.", "shared.")
PYTHON_MODULE = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")
SERVICE_PORTS = {
    "ledger": 8081,
    "relay": 8083,
    "projector": 8080,
    "replenisher": 8082,
    "gateway": 8084,
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = load_yaml(COMPOSE_FILE)
    assert isinstance(compose, dict)
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def modules_run_by(service: dict[str, Any]) -> list[str]:
    """Every ``python -m X`` in the service's command, X being one of our packages."""
    found = PYTHON_MODULE.findall(command_text(service))
    return [m for m in found if m.startswith(OUR_PACKAGES)]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def host_sources(service: dict[str, Any]) -> list[str]:
    """The project paths a service mounts: the relative host side of each bind mount."""
    sources = []
    for volume in service.get("volumes", []):
        source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
        if source.startswith("."):
            sources.append(source)
    return sources


def scrape_targets(config_file: Path) -> dict[str, list[str]]:
    config = load_yaml(config_file)
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_compose_runs_our_code_in_the_services_and_the_init_job(services):
    runners = {name for name, service in services.items() if modules_run_by(service)}
    assert {"init", "ledger", "projector", "replenisher", "gateway"} <= runners


def test_every_module_the_compose_file_runs_exists_in_the_tree(services):
    missing = []
    for name, service in services.items():
        for module in modules_run_by(service):
            path = ROOT.joinpath(*module.split("."))
            if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
                missing.append(f"{name}: python -m {module}")
    assert missing == []


def test_every_stockledger_variable_the_compose_file_sets_is_a_settings_field(services):
    fields = {f"STOCKLEDGER_{name.upper()}" for name in Settings.model_fields}
    unknown = [
        f"{name}: {var}"
        for name, service in services.items()
        for var in environment_of(service)
        if var.startswith("STOCKLEDGER_") and var not in fields
    ]
    assert unknown == []


def test_our_programs_reach_kafka_and_postgres_by_their_service_names(services):
    for name, service in services.items():
        if not modules_run_by(service):
            continue
        env = environment_of(service)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert "@postgres:5432/" in env["DATABASE_URL"], name


def test_kafka_advertises_the_address_our_containers_bootstrap_from(services):
    advertised = environment_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert "://kafka:9092" in advertised
    assert "://localhost:9092" in advertised


def test_every_file_or_folder_mounted_from_the_project_exists(services):
    missing = [
        f"{name}: {source}"
        for name, service in services.items()
        for source in host_sources(service)
        if not (ROOT / source).exists()
    ]
    assert missing == []


def test_every_file_the_dockerfile_copies_exists():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert copied
    assert [s for s in copied if not (ROOT / s).exists()] == []


def test_the_image_ships_the_migrations_where_migrate_looks_for_them():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "WORKDIR /app" in dockerfile
    assert "COPY deploy/postgres/migrations/ deploy/postgres/migrations/" in dockerfile
    assert "COPY shared/ shared/" in dockerfile


def test_the_local_prometheus_config_scrapes_every_service_on_loopback():
    targets = scrape_targets(PROMETHEUS_DIR / "prometheus.yml")
    assert targets == {name: [f"127.0.0.1:{port}"] for name, port in SERVICE_PORTS.items()}


def test_the_compose_prometheus_config_scrapes_every_service_by_name():
    targets = scrape_targets(PROMETHEUS_DIR / "prometheus.compose.yml")
    assert targets == {name: [f"{name}:{port}"] for name, port in SERVICE_PORTS.items()}


def test_compose_serves_each_service_on_the_port_prometheus_scrapes(services):
    for name, port in SERVICE_PORTS.items():
        env = environment_of(services[name])
        served = (
            env.get("STOCKLEDGER_METRICS_PORT")
            or env.get("STOCKLEDGER_HTTP_PORT")
            or env.get("STOCKLEDGER_GATEWAY_PORT")
        )
        assert served == str(port), name
        assert env.get("STOCKLEDGER_HTTP_HOST") == "0.0.0.0", name


def test_both_prometheus_configs_load_rules_from_the_rules_folder():
    assert (PROMETHEUS_DIR / "rules").is_dir()
    for config_file in ("prometheus.yml", "prometheus.compose.yml"):
        assert load_yaml(PROMETHEUS_DIR / config_file)["rule_files"] == ["rules/*.yml"]


def test_compose_prometheus_reads_the_compose_config_from_the_mounted_folder(services):
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.compose.yml" in prometheus["command"]


def test_the_grafana_datasource_is_the_default_prometheus_of_the_compose_stack(services):
    datasources = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert len(datasources) == 1
    source = datasources[0]
    assert source["name"] == "Prometheus"
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in services


def test_grafana_loads_dashboards_from_where_compose_mounts_them(services):
    providers = load_yaml(GRAFANA_DASHBOARDS)["providers"]
    paths = {p["options"]["path"] for p in providers if p.get("type", "file") == "file"}
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"] if isinstance(v, str)}
    assert paths == {"/var/lib/grafana/dashboards"}
    assert paths <= mounted


def test_each_service_connects_to_postgres_with_its_own_role(services):
    def user(service: str, variable: str = "DATABASE_URL") -> str | None:
        return urlsplit(environment_of(services[service])[variable]).username

    assert {s: user(s) for s in ("ledger", "projector", "replenisher", "gateway")} == {
        s: ROLES[s] for s in ("ledger", "projector", "replenisher", "gateway")
    }
    assert user("projector", "STOCKLEDGER_API_DATABASE_URL") == ROLES["api"]
    init = services["init"]
    assert "shared.roles" in modules_run_by(init)
    assert {password_variable(s) for s in ROLES} <= set(environment_of(init))
