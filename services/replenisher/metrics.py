"""The replenisher's Prometheus metrics (no per-SKU labels)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class ReplenisherMetrics:
    registry: CollectorRegistry
    requests: Counter
    open_requests: Gauge
    overdue_requests: Gauge
    below_reorder_point: Gauge
    oversold: Gauge
    forecast_error: Gauge
    forecasts: Gauge
    entries_applied: Counter
    forecast_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ReplenisherMetrics:
        r = registry or CollectorRegistry()
        p = "stockledger_replenisher_"
        return cls(
            registry=r,
            requests=Counter(p + "requests", "Requests published.", ["kind", "policy"], registry=r),
            open_requests=Gauge(
                p + "open_requests", "Requests not yet received or cancelled.", registry=r
            ),
            overdue_requests=Gauge(
                p + "overdue_requests", "Open requests past their needed_by time.", registry=r
            ),
            below_reorder_point=Gauge(
                p + "items_below_reorder_point",
                "Items at or below their reorder point.",
                registry=r,
            ),
            oversold=Gauge(p + "items_oversold", "Items with available < 0.", registry=r),
            forecast_error=Gauge(
                p + "forecast_mae_units",
                "Mean held-out absolute error of the forecasts.",
                registry=r,
            ),
            forecasts=Gauge(p + "forecasts", "Items with a forecast.", registry=r),
            entries_applied=Counter(p + "entries_applied", "Ledger entries applied.", registry=r),
            forecast_seconds=Histogram(
                p + "forecast_pass_seconds", "Time to recompute every forecast.", registry=r
            ),
        )
