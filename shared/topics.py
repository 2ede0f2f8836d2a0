"""The suite's Kafka topics: contract names, partitions and settings, and their creation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

SCANS = "inventory.scans.v1"
ORDERS = "commerce.orders.v1"
REPLENISHMENT_UPDATES = "replenishment.updates.v1"
INPUT_TOPICS = (SCANS, ORDERS, REPLENISHMENT_UPDATES)
LEDGER = "stock.ledger.v1"
LEVELS = "stock.levels.v1"
REPLENISHMENT_REQUESTS = "replenishment.requests.v1"
DLQ_SUFFIX = ".dlq"

ONE_WEEK_MS = str(7 * 24 * 3600 * 1000)
# Each input topic's partitions. The broker's work on a produce request grows with the partition
# batches in it, and an input producer at a given rate fills fewer, larger batches over fewer
# partitions; the ledger reads every input partition in one consumer either way (a second
# instance waits on the first's item locks), and each item keeps its partition and its order.
INPUT_PARTITIONS = 3
# Inputs accept a little over the contract's 1 MiB so that an oversized event reaches the ledger
# and is dead-lettered with a reason, instead of being refused to its producer without a trace.
MAX_MESSAGE_BYTES = str(2 * 1024 * 1024 + 4096)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(prefix: str = "") -> list[TopicSpec]:
    """Every topic the suite reads or writes, with its partitions and settings."""
    big = {"max.message.bytes": MAX_MESSAGE_BYTES}
    inputs = [
        TopicSpec(prefix + t, INPUT_PARTITIONS, {"retention.ms": ONE_WEEK_MS, **big})
        for t in INPUT_TOPICS
    ]
    dlqs = [
        TopicSpec(prefix + t + DLQ_SUFFIX, 1, {"retention.ms": "-1", **big}) for t in INPUT_TOPICS
    ]
    outputs = [
        TopicSpec(prefix + LEDGER, 6, {"retention.ms": "-1"}),
        TopicSpec(
            prefix + LEVELS,
            6,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
        TopicSpec(prefix + REPLENISHMENT_REQUESTS, 3, {"retention.ms": "-1"}),
    ]
    return inputs + dlqs + outputs


async def create_topics(bootstrap_servers: str, prefix: str = "", **client: Any) -> list[str]:
    """Create the topics that do not exist yet and wait until the broker lists them all.

    Returns the names created. Safe to run twice, or from two processes at once. ``client``
    holds the admin client's security options (``shared.kafka.client_options``).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    specs = topic_specs(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
            )
            for name, code, *message in response.topic_errors:
                error = for_code(code)(*message) if code else None
                if error is not None and not isinstance(error, TopicAlreadyExistsError):
                    raise RuntimeError(f"creating topic {name} failed: {error}")
        async with asyncio.timeout(30):
            while not {s.name for s in specs} <= set(await admin.list_topics()):
                await asyncio.sleep(0.1)
        return [s.name for s in missing]
    finally:
        await admin.close()


def main() -> None:
    from shared.kafka import client_options
    from shared.settings import Settings

    settings = Settings()
    options = client_options(settings)
    servers = options.pop("bootstrap_servers")
    created = asyncio.run(create_topics(servers, settings.topic_prefix, **options))
    print(f"topics: {len(created)} created, {len(topic_specs()) - len(created)} already there")


if __name__ == "__main__":
    main()
