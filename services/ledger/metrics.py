"""The ledger's Prometheus metrics (no per-SKU, per-order or per-event labels)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True)
class LedgerMetrics:
    registry: CollectorRegistry
    consumed: Counter
    appended: Counter
    duplicates: Counter
    dead_letters: Counter
    batch_size: Histogram
    append_seconds: Histogram
    relay_published: Counter
    relay_position: Gauge
    relay_lag: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> LedgerMetrics:
        r = registry or CollectorRegistry()
        p = "stockledger_ledger_"
        return cls(
            registry=r,
            consumed=Counter(
                p + "events_consumed", "Input messages consumed.", ["topic"], registry=r
            ),
            appended=Counter(p + "entries_appended", "Ledger entries appended.", registry=r),
            duplicates=Counter(p + "duplicates_ignored", "Redelivered events ignored.", registry=r),
            dead_letters=Counter(
                p + "dead_lettered", "Messages sent to a DLQ.", ["topic", "reason"], registry=r
            ),
            batch_size=Histogram(
                p + "batch_size_events", "Messages per batch.", buckets=BATCH_BUCKETS, registry=r
            ),
            append_seconds=Histogram(p + "append_seconds", "Time to append one batch.", registry=r),
            relay_published=Counter(
                p + "relay_published_entries", "Entries published to stock.ledger.v1.", registry=r
            ),
            relay_position=Gauge(
                p + "relay_position", "Last ledger position published.", registry=r
            ),
            relay_lag=Gauge(
                p + "relay_lag_entries",
                "Ledger entries committed but not yet published.",
                registry=r,
            ),
        )
