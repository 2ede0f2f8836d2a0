"""Latencies observed many at a time land in the same buckets as one at a time."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from services.projector.metrics import VISIBLE_BUCKETS
from shared.metrics import observe_many


def _histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("latency", "test", buckets=VISIBLE_BUCKETS, registry=registry), registry


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_many_latencies_at_once_fill_the_buckets_as_one_at_a_time() -> None:
    rng = random.Random(3)
    # on the bounds, between them, beyond the last, zero
    amounts = [*VISIBLE_BUCKETS, 0.0, 1e9, *(rng.expovariate(2.0) for _ in range(5000))]
    one, one_registry = _histogram()
    many, many_registry = _histogram()
    for amount in amounts:
        one.observe(amount)
    observe_many(many, amounts[:2500])
    observe_many(many, amounts[2500:])
    got, expected = _samples(many_registry), _samples(one_registry)
    # the sum is added in another order, so it may differ in its last bits
    assert got.pop(("latency_sum", "")) == pytest.approx(expected.pop(("latency_sum", "")))
    assert got == expected
    assert got[("latency_count", "")] == len(amounts)


def test_no_latencies_change_nothing() -> None:
    empty, registry = _histogram()
    before = _samples(registry)
    observe_many(empty, [])
    assert _samples(registry) == before
