"""The gateway's Prometheus metrics (no per-SKU or per-order labels)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CHILDREN_KEPT = 512


@dataclass(frozen=True)
class GatewayMetrics:
    registry: CollectorRegistry
    webhooks: Counter
    signature_failures: Counter
    unhandled: Counter
    skipped_lines: Counter
    published: Counter
    refused: Counter
    deliveries: Counter
    retries: Counter
    delivery_lag: Histogram
    pending: Gauge
    oldest_failing: Gauge
    _children: dict[tuple[int, tuple[str, ...]], Counter] = field(
        default_factory=dict, compare=False, repr=False
    )

    def labelled(self, counter: Counter, *labels: str) -> Counter:
        """``counter.labels(*labels)``, kept for the next request (a few hundred series at most;
        beyond that, looked up each time)."""
        key = (id(counter), labels)
        child = self._children.get(key)
        if child is None:
            child = counter.labels(*labels)
            if len(self._children) < CHILDREN_KEPT:
                self._children[key] = child
        return child

    def published_of(self, topic: str, origin: str) -> Counter:
        return self.labelled(self.published, topic, origin)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> GatewayMetrics:
        r = registry or CollectorRegistry()
        p = "stockledger_gateway_"
        metrics = cls(
            registry=r,
            webhooks=Counter(
                p + "webhooks_received",
                "Webhooks received with a valid signature, by source and topic.",
                ["source", "topic"],
                registry=r,
            ),
            signature_failures=Counter(
                p + "signature_failures",
                "Webhooks refused (401) for a missing or wrong signature.",
                ["source"],
                registry=r,
            ),
            unhandled=Counter(
                p + "webhooks_unhandled",
                "Verified webhooks of a topic or status that maps to no event (answered 200).",
                ["source", "topic"],
                registry=r,
            ),
            skipped_lines=Counter(
                p + "lines_skipped",
                "Order or refund lines left out of the events, by source and reason.",
                ["source", "reason"],
                registry=r,
            ),
            published=Counter(
                p + "events_published",
                "Input events Kafka acknowledged, by topic and origin.",
                ["topic", "origin"],
                registry=r,
            ),
            refused=Counter(
                p + "events_refused",
                "Events refused by POST /v1/events, by error.reason.",
                ["reason"],
                registry=r,
            ),
            deliveries=Counter(
                p + "delivery_attempts",
                "Outbound webhook attempts by outcome: delivered, retry (failed, tried again), "
                "failed (given up).",
                ["outcome"],
                registry=r,
            ),
            retries=Counter(
                p + "delivery_retries", "Outbound webhook attempts after the first.", registry=r
            ),
            delivery_lag=Histogram(
                p + "delivery_lag_seconds",
                "From a delivery's recording to its receiver's 2xx.",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
                registry=r,
            ),
            pending=Gauge(p + "deliveries_pending", "Deliveries not yet delivered.", registry=r),
            oldest_failing=Gauge(
                p + "oldest_failing_delivery_seconds",
                "Age of the oldest pending delivery that has failed an attempt (0: none).",
                registry=r,
            ),
        )
        # The series the dashboards and alerts read exist from the start, at zero, rather than
        # from the first webhook or delivery of their kind.
        for source in ("shopify", "woocommerce"):
            metrics.signature_failures.labels(source)
        for outcome in ("delivered", "retry", "failed"):
            metrics.deliveries.labels(outcome)
        for source, topic in (
            ("shopify", "orders/create"),
            ("shopify", "orders/cancelled"),
            ("shopify", "fulfillments/create"),
            ("shopify", "refunds/create"),
            ("woocommerce", "order.created"),
            ("woocommerce", "order.updated"),
        ):
            metrics.webhooks.labels(source, topic)
        return metrics
