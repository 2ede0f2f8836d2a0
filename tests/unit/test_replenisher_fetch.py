"""The replenisher's consumer fetches ledger entries in bounded amounts, set by its settings."""

from __future__ import annotations

import pytest

from services.replenisher.app import ledger_consumer
from shared.kafka import Assignment, batch_consumer
from shared.settings import Settings

MiB = 1024 * 1024


async def test_the_replenisher_fetches_at_most_its_settings_bytes() -> None:
    consumer = ledger_consumer(Settings(), Assignment())
    assert consumer._fetch_max_bytes == 64 * MiB
    assert consumer._max_partition_fetch_bytes == 8 * MiB
    assert consumer._subscription.subscription.topics == {"stock.ledger.v1"}
    await consumer.stop()


async def test_the_bounds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKLEDGER_REPLENISHER_FETCH_MAX_BYTES", str(4 * MiB))
    monkeypatch.setenv("STOCKLEDGER_REPLENISHER_PARTITION_FETCH_BYTES", str(MiB))
    consumer = ledger_consumer(Settings(), Assignment())
    assert consumer._fetch_max_bytes == 4 * MiB
    assert consumer._max_partition_fetch_bytes == MiB
    await consumer.stop()


async def test_other_consumers_fetch_as_before() -> None:
    consumer = batch_consumer(Settings(), ["stock.ledger.v1"], "projector", Assignment())
    assert consumer._fetch_max_bytes == 64 * MiB
    assert consumer._max_partition_fetch_bytes == 8 * MiB
    await consumer.stop()
