"""The Prometheus rules and Grafana dashboards query only what the services export (no server).

The exported names come from the services' own metric definitions (``services/*/metrics.py``);
the used names are read out of every rule and dashboard expression. ``make check-monitoring``
checks the same files with promtool, and tests/integration/test_monitoring.py against a live scrape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.gateway.metrics import GatewayMetrics
from services.ledger.metrics import LedgerMetrics
from services.projector.metrics import ProjectorMetrics
from services.replenisher.metrics import ReplenisherMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "stockledger.yml"
RULE_TESTS_FILE = PROMETHEUS_DIR / "tests" / "stockledger_test.yml"
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DASHBOARDS = {"stock-overview.json": "Stock overview", "pipeline-health.json": "Pipeline health"}
JOBS = {"ledger", "relay", "projector", "replenisher", "gateway"}
DATASOURCE_UID = "prometheus"

# Series Prometheus makes itself, not the services.
PROMETHEUS_SERIES = {"up"}

PROMQL_FUNCTIONS = {
    *("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh"),
    *("avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh"),
    *("count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg"),
    *("delta", "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg"),
    *("histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev"),
    *("histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase"),
    *("irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2"),
    *("mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi"),
    *("predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets"),
    *("round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc"),
    *("sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan"),
    *("tanh", "time", "timestamp", "vector", "year"),
}
PROMQL_AGGREGATIONS = {
    *("avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max"),
    *("min", "quantile", "stddev", "stdvar", "sum", "topk"),
}
PROMQL_KEYWORDS = {
    *("and", "or", "unless", "atan2", "bool", "offset", "by", "without", "on", "ignoring"),
    *("group_left", "group_right", "start", "end", "inf", "nan"),
}
PROMQL_WORDS = PROMQL_FUNCTIONS | PROMQL_AGGREGATIONS | PROMQL_KEYWORDS

_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
# An identifier not inside a number (1e3, 5m), followed by {, [, (, an operator, blank or the end.
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?=\s*[{\[(]|\s|$|[)\],+\-*/^%=!<>])")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (Grafana variables allowed in it)."""
    text = _GRAFANA_VARIABLE.sub("1m", expr)
    text = _STRING.sub('""', text)
    text = _BRACES.sub("{}", text)  # label matchers
    text = _BRACKETS.sub("[]", text)  # range and subquery durations
    text = _GROUPING.sub(" ", text)  # by (job, le), on (instance) ...
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(1)
        if word.lower() in PROMQL_WORDS:
            continue
        called = text[match.end() :].lstrip().startswith("(")
        assert not called, f"unknown PromQL function {word!r} in {expr!r}"
        names.add(word)
    return names


def _family_sample_names(family_name: str, kind: str) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
    }[kind]
    return {family_name + suffix for suffix in suffixes}


def exported_metric_names() -> set[str]:
    """Every sample name the services can expose.

    A labelled metric shows no sample before its first use, so its names follow from its type.
    """
    names: set[str] = set()
    registries: list[CollectorRegistry] = [
        LedgerMetrics.create().registry,
        ProjectorMetrics.create().registry,
        ReplenisherMetrics.create().registry,
        GatewayMetrics.create().registry,
    ]
    for registry in registries:
        for family in registry.collect():
            samples = {sample.name for sample in family.samples}
            names |= samples or _family_sample_names(family.name, family.type)
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


def recording_rule_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def load_dashboard(name: str) -> dict[str, Any]:
    document = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for name in DASHBOARDS
        for panel in panels(load_dashboard(name))
        for target in panel.get("targets", [])
    ]


def dashboard_metric_names() -> set[str]:
    """Every metric name any dashboard panel queries."""
    return {name for expr in dashboard_exprs() for name in metric_names(expr)}


def test_metric_names_are_read_from_promql_without_functions_labels_or_variables():
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_seconds_bucket{job="x", le!="1"}'
        "[$__rate_interval]))) > 1e3 and on (instance) deriv(b_entries[10m] offset 5m) > 0"
        ' or max(c_total) / sum without (topic) (increase(d:rate1m{reason=~"a|b"}[${__range}]))'
        ' * 3600 unless up{job=~"ledger|projector"} == bool 0'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_entries", "c_total", "d:rate1m", "up"}


def test_an_unknown_function_in_an_expression_is_an_error():
    with pytest.raises(AssertionError, match="unknown PromQL function 'rat'"):
        metric_names("rat(x_total[1m])")


def test_the_exported_names_include_labelled_counters_before_their_first_use():
    exported = exported_metric_names()
    assert "stockledger_ledger_dead_lettered_total" in exported
    assert "stockledger_replenisher_requests_total" in exported
    assert "stockledger_projector_event_to_visible_seconds_bucket" in exported
    assert "stockledger_ledger_relay_lag_entries" in exported


def test_every_metric_the_rules_query_is_exported_by_a_service():
    known = exported_metric_names() | PROMETHEUS_SERIES | recording_rule_names()
    unknown = {
        (rule.get("alert") or rule.get("record"), name)
        for rule in rules()
        for name in metric_names(rule["expr"])
        if name not in known
    }
    assert not unknown


def test_every_metric_the_dashboards_query_is_exported_by_a_service():
    known = exported_metric_names() | PROMETHEUS_SERIES | recording_rule_names()
    used = dashboard_metric_names()
    assert used, "the dashboards query nothing"
    assert used - known == set()


@pytest.mark.parametrize(("file_name", "title"), DASHBOARDS.items())
def test_each_dashboard_parses_with_its_title_and_the_prometheus_datasource(file_name, title):
    dashboard = load_dashboard(file_name)
    assert dashboard["title"] == title
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    queried = [p for p in panels(dashboard) if p["type"] not in ("row", "text")]
    assert queried
    for panel in queried:
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("file_name", DASHBOARDS)
def test_each_dashboard_panel_has_its_own_id_and_place_on_the_grid(file_name):
    every = list(panels(load_dashboard(file_name)))
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    for panel in every:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["h"] > 0, panel["title"]
        assert pos["y"] >= 0, panel["title"]


def test_the_dashboard_uids_differ():
    uids = [load_dashboard(name)["uid"] for name in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_every_alert_has_a_severity_a_summary_and_a_description():
    assert alerts()
    for alert in alerts():
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert alert["annotations"]["description"].strip(), alert["alert"]


def test_the_rules_and_dashboards_name_only_the_jobs_both_prometheus_configs_scrape():
    for config in ("prometheus.yml", "prometheus.compose.yml"):
        jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_DIR / config)["scrape_configs"]}
        assert jobs == JOBS, config
    matcher = re.compile(r'\bjob\s*=~?\s*"([^"]*)"')
    exprs = [rule["expr"] for rule in rules()] + dashboard_exprs()
    named = {job for expr in exprs for m in matcher.findall(expr) for job in m.split("|")}
    assert named
    assert named <= JOBS


def test_promtool_tests_show_every_alert_firing_and_not_firing():
    tests = load_yaml(RULE_TESTS_FILE)
    assert tests["rule_files"] == ["../rules/stockledger.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert firing == names
    assert quiet == names


def test_promtool_tests_cover_at_least_two_recording_rules():
    tests = load_yaml(RULE_TESTS_FILE)
    checked = {
        check["expr"]
        for case in tests["tests"]
        for check in case.get("promql_expr_test", [])
        if check.get("exp_samples")
    }
    assert len(checked & recording_rule_names()) >= 2
