"""The relay's remembered partition choice is the default partitioner's (murmur2, as Java's)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import _partitioner


def test_the_remembered_choice_is_the_default_partitioners() -> None:
    rng = random.Random(5)
    default = DefaultPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(500):
            key = f"{rng.choice(['UK', 'EU', 'ROW'])}|SKU-{rng.randrange(10**6)}".encode()
            assert _partitioner(count)(key) == default(key, partitions, partitions)
            assert _partitioner(count)(key) == default(key, partitions, partitions)  # remembered
