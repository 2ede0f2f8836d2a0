"""The projector's latency histograms count each entry once, each distinct time parsed once; an
unreadable or missing time leaves out that figure only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.projector.adapters.consumer import ProjectorConsumer
from services.projector.metrics import ProjectorMetrics


def samples(metrics: ProjectorMetrics, name: str) -> dict[str, float]:
    """A histogram's cumulative buckets by bound, and its count."""
    full = "stockledger_projector_" + name
    return {
        s.labels.get("le", "count"): s.value
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name in (full + "_bucket", full + "_count")
    }


def test_latencies_are_counted_once_an_entry() -> None:
    metrics = ProjectorMetrics.create()
    projector = ProjectorConsumer(None, None, None, metrics, "levels", 100, 10)  # type: ignore[arg-type]
    recent = datetime.now(UTC) - timedelta(seconds=0.03)
    old = datetime.now(UTC) - timedelta(seconds=3)
    at = {t: t.isoformat().replace("+00:00", "Z") for t in (recent, old)}
    entries: list[dict[str, Any]] = [
        *({"occurred_at": at[recent], "recorded_at": at[recent]} for _ in range(3)),
        {"occurred_at": at[old], "recorded_at": at[recent]},
        {"occurred_at": "not a time", "recorded_at": at[old]},  # its recorded_at still counts
        {"recorded_at": at[recent]},
    ]
    projector._observe(entries, {}, 0.01)
    occurred = samples(metrics, "event_to_visible_seconds")
    recorded = samples(metrics, "ledger_to_visible_seconds")
    wanted = {"0.025": 0, "0.05": 3, "2.5": 3, "5.0": 4, "+Inf": 4, "count": 4}
    assert {k: occurred[k] for k in wanted} == wanted
    wanted = {"0.025": 0, "0.05": 5, "2.5": 5, "5.0": 6, "+Inf": 6, "count": 6}
    assert {k: recorded[k] for k in wanted} == wanted
