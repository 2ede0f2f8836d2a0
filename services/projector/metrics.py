"""The projector's Prometheus metrics (no per-SKU labels)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

VISIBLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class ProjectorMetrics:
    registry: CollectorRegistry
    applied: Counter
    skipped: Counter
    apply_seconds: Histogram
    lag: Gauge
    event_to_visible: Histogram
    ledger_to_visible: Histogram
    levels_published: Counter
    http_requests: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ProjectorMetrics:
        r = registry or CollectorRegistry()
        p = "stockledger_projector_"
        return cls(
            registry=r,
            applied=Counter(p + "entries_applied", "Ledger entries applied.", registry=r),
            skipped=Counter(
                p + "entries_skipped", "Entries already applied (redelivered).", registry=r
            ),
            apply_seconds=Histogram(p + "apply_seconds", "Time to apply one batch.", registry=r),
            lag=Gauge(
                p + "lag_entries", "Ledger head minus the highest applied position.", registry=r
            ),
            event_to_visible=Histogram(
                p + "event_to_visible_seconds",
                "From an entry's occurred_at to its level being visible.",
                buckets=VISIBLE_BUCKETS,
                registry=r,
            ),
            ledger_to_visible=Histogram(
                p + "ledger_to_visible_seconds",
                "From an entry's recorded_at in the ledger to its level being visible.",
                buckets=VISIBLE_BUCKETS,
                registry=r,
            ),
            levels_published=Counter(
                p + "levels_published", "Levels sent to stock.levels.v1.", registry=r
            ),
            http_requests=Counter(
                "stockledger_http_requests", "HTTP API requests.", ["route", "status"], registry=r
            ),
        )
