"""Kafka plumbing shared by the services: producers, batch consumers, offsets, dead letters."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from .alignment import AlignedFetcher
from .settings import FETCH_MAX_BYTES, PARTITION_FETCH_BYTES, Settings
from .topics import DLQ_SUFFIX, MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

Record = Any  # aiokafka.ConsumerRecord[bytes, bytes]


def client_options(settings: Settings) -> dict[str, Any]:
    """What every aiokafka client needs to reach the brokers: their addresses and, when the
    settings ask for it, TLS (verified against ``kafka_ssl_cafile``) and SASL credentials."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def librdkafka_options(settings: Settings) -> dict[str, Any]:
    """The same as :func:`client_options`, in librdkafka's (confluent-kafka's) terms."""
    options: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL") and settings.kafka_ssl_cafile:
        options["ssl.ca.location"] = settings.kafka_ssl_cafile
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl.mechanisms"] = settings.kafka_sasl_mechanism
        options["sasl.username"] = settings.kafka_sasl_username
        options["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return options


class BrokerRefusedError(RuntimeError):
    """The brokers refused this client: its SASL credentials or mechanism, or TLS that does not
    verify."""


async def start_client(
    client: AIOKafkaProducer | AIOKafkaConsumer, settings: Settings, patience: float = 30.0
) -> None:
    """Start an aiokafka client, waiting up to ``patience`` seconds for brokers that are away (a
    broker restarting as the service starts). Brokers that refuse the client are not waited for:
    one direct connection finds out why and :class:`BrokerRefusedError` says so (aiokafka itself
    says only that it could not bootstrap)."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            await client.start()
            return
        except KafkaConnectionError as exc:
            reason = await _refusal(settings)
            if reason is not None:
                raise BrokerRefusedError(reason) from exc
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Kafka unreachable; trying again", extra={"in_seconds": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _refusal(settings: Settings) -> str | None:
    """Why the first broker refuses a connection with these settings; None if it does not."""
    options = client_options(settings)
    first = options.pop("bootstrap_servers").split(",")[0].strip()
    host, _, port = first.rpartition(":")
    refused = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError)
    try:
        conn = await create_conn(host, int(port), **options)
    except (*refused, ssl.SSLError) as exc:
        who = f"{settings.kafka_security_protocol}"
        if settings.kafka_security_protocol.startswith("SASL_"):
            who += f", {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}"
        return f"the Kafka broker {first} refused this client ({who}): {exc}"
    except (OSError, KafkaError, TimeoutError):
        return None
    conn.close()
    return None


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): a retried send is written once."""
    return AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=True,
        acks="all",
        linger_ms=options.pop("linger_ms", 5),
        max_batch_size=options.pop("max_batch_size", 256 * 1024),
        max_request_size=options.pop("max_request_size", 4 * 1024 * 1024),
        **options,
    )


def dead_letter_producer(settings: Settings) -> AIOKafkaProducer:
    """The producer of dead letters: acks=all, but not idempotent. When the broker refuses a
    batch of an idempotent aiokafka producer as too large, the producer has already counted the
    batch's sequence numbers, and every later send to that partition fails as out of order: one
    dead letter over its topic's limit would stop every dead letter after it. A retried dead letter
    may instead be written twice (``error.offset`` tells the copies apart from another record)."""
    return AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=False,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )


class Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tracks the partitions a consumer owns, for readiness."""

    def __init__(self) -> None:
        self.partitions: set[TopicPartition] = set()
        self.assigned = asyncio.Event()
        self.generation = 0  # assignments so far: a change means others may have consumed

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.partitions.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.partitions.update(assigned)
        self.generation += 1
        self.assigned.set()


async def readiness(pool: Any, assignment: Assignment) -> dict[str, bool]:
    """A service's readiness: PostgreSQL answers, and the consumer owns partitions."""
    database = pool is not None and await pool.fetchval("SELECT true") is True
    return {"postgresql": database, "kafka_assigned": assignment.assigned.is_set()}


def batch_consumer(
    settings: Settings,
    topics: Sequence[str],
    group: str,
    listener: Assignment,
    fetch_max_bytes: int = FETCH_MAX_BYTES,
    max_partition_fetch_bytes: int = PARTITION_FETCH_BYTES,
) -> AIOKafkaConsumer:
    """A consumer for at-least-once batches: starts at the earliest offset, commits by hand.

    A fetch of up to ``fetch_max_bytes`` (up to ``max_partition_fetch_bytes`` of a partition) is
    held in memory twice while it is decoded, and once until its last record is handed out."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=f"{settings.consumer_group_prefix}.{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
        fetch_max_bytes=fetch_max_bytes,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        isolation_level="read_committed",
    )
    consumer.subscribe(list(topics), listener=listener)
    return consumer


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """Per partition, the offset to commit once these records are done with."""
    offsets: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        if offsets.get(key, 0) <= r.offset:
            offsets[key] = r.offset + 1
    return {TopicPartition(*key): offset for key, offset in offsets.items()}


async def commit(consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]) -> bool:
    """Commit per-partition offsets; after a rebalance the new owner redelivers, which is safe."""
    if not offsets:
        return True
    try:
        await consumer.commit(dict(offsets))
        return True
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning(
            "offset commit refused after a rebalance; records will be redelivered",
            extra={"error": str(exc)},
        )
        return False


DETAIL_BYTES = 1000  # error.detail is cut to this many bytes of UTF-8
SHORT_DETAIL_BYTES = 200  # and to this many in a dead letter shortened to fit its topic
DLQ_MAX_BYTES = int(MAX_MESSAGE_BYTES)  # the dead-letter topics' max.message.bytes (topics.py)
Headers = list[tuple[str, bytes]]
VARINT_GROWTH = 10  # how much longer a record's two length varints get with a value (5 bytes each)


def _cut(text: str, size: int) -> bytes:
    """``text`` in UTF-8, at most ``size`` bytes, no character cut in two."""
    return text.encode()[:size].decode(errors="ignore").encode()


def dead_letter_forms(
    record: Record, reason: str, detail: str, limit: int = DLQ_MAX_BYTES
) -> Iterator[tuple[bytes | None, Headers]]:
    """The dead letters of ``record``, each to be tried when the topic refuses the one before as
    too large (``limit`` is the topic's size limit; the broker counts the record batch). Forms
    that cannot fit ``limit`` are left out, so that the broker refuses none while ``limit`` holds:

    1. its value, key and headers, plus ``error.reason``, ``error.detail`` (at most 1000 bytes)
       and ``error.offset``;
    2. its value and key whole, its headers left out and the detail cut to 200 bytes, with
       ``error.truncated: headers``;
    3. the value's first bytes, as many as fit, with ``error.truncated: value`` and
       ``error.original_size`` (the value's length); should the topic refuse that too (a limit
       set below ``limit``), half as many each time.
    """

    def fits(value: bytes | None, headers: Headers) -> bool:  # by an upper bound of the size
        size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, value, headers)
        return size <= limit

    where = ("error.offset", f"{record.partition}:{record.offset}".encode())
    why = ("error.reason", reason.encode())
    original: Headers = list(record.headers or ())
    full = [*original, why, ("error.detail", _cut(detail, DETAIL_BYTES)), where]
    if fits(record.value, full):
        yield record.value, full
    short: Headers = [why, ("error.detail", _cut(detail, SHORT_DETAIL_BYTES)), where]
    without_headers = [*short, ("error.truncated", b"headers")]
    if (original or len(detail.encode()) > SHORT_DETAIL_BYTES) and fits(
        record.value, without_headers
    ):
        yield record.value, without_headers
    value = record.value or b""
    headers = [
        *short,
        ("error.truncated", b"value"),
        ("error.original_size", str(len(value)).encode()),
    ]
    room = limit - DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, b"", headers)
    kept = min(len(value), room - VARINT_GROWTH)
    while kept > 0:
        yield value[:kept], headers
        kept //= 2
    yield b"", headers


async def dead_letter(
    producer: AIOKafkaProducer,
    rejected: Sequence[tuple[Record, str, str]],
    limit: int = DLQ_MAX_BYTES,
) -> int:
    """Send each rejected record to ``<topic>.dlq`` with its bytes, key and the reason; returns
    once the broker has them all.

    One too large for the topic (``limit``, or less if the topic says so) is sent shortened (see
    :func:`dead_letter_forms`), so that none is ever dropped and none stops the flow. Any other
    failure is raised once every send has ended; trying again may then write some twice. The
    producer is :func:`dead_letter_producer`'s, which a refused record does not break.
    """
    pending = [
        (record, dead_letter_forms(record, reason, detail, limit))
        for record, reason, detail in rejected
    ]
    sent = 0
    while pending:
        futures: list[asyncio.Future[Any]] = []
        for record, forms in pending:
            form = next(forms, None)
            if form is None:
                raise RuntimeError(f"{record.topic + DLQ_SUFFIX} refuses even an empty dead letter")
            value, headers = form
            try:
                futures.append(
                    await producer.send(
                        record.topic + DLQ_SUFFIX, value, key=record.key, headers=headers
                    )
                )
            except MessageSizeTooLargeError as exc:  # over the producer's own max_request_size
                refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                refused.set_exception(exc)
                futures.append(refused)
        results = await asyncio.gather(*futures, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        again = []
        for (record, forms), result in zip(pending, results, strict=True):
            if isinstance(result, MessageSizeTooLargeError):
                log.warning(
                    "dead letter too large for its topic; sending it shortened",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                    },
                )
                again.append((record, forms))
            elif not isinstance(result, BaseException):
                sent += 1
        other = [f for f in failures if not isinstance(f, MessageSizeTooLargeError)]
        if other:
            raise other[0]
        pending = again
    return sent


GATHER_FROM = 1_000
"""A fetch of at least this many records means the stream is busy (see :func:`consume_batches`)."""


async def consume_batches(
    consumer: AIOKafkaConsumer,
    stopping: asyncio.Event,
    handle: Callable[[list[Record]], Awaitable[bool]],
    max_records: int,
    timeout_ms: int,
    gather_ms: int = 0,
    aligned: bool = False,
) -> None:
    """Fetch batches until stopping, or until ``handle`` returns False (stopped mid-batch).

    With ``gather_ms``, a busy stream (a fetch of at least :data:`GATHER_FROM` records) is
    gathered for up to that long more, up to ``max_records``, into one batch: work done per item
    and batch is then shared by more records. A quiet stream is handled as it comes. Records
    gathered when stopping are not handled, and so not committed: they are read again later.
    ``aligned``: the partitions are read in step, in produce order
    (:class:`~shared.alignment.AlignedFetcher`), so that while catching up none runs ahead; once
    every partition is read to its end, what arrives next comes as fetched, unmerged (the
    handler orders a batch itself), while it leaves every partition at its end again.
    """
    get = _aligned(consumer, stopping, max_records) if aligned else _plain(consumer, stopping)
    while not stopping.is_set():
        records = await get(timeout_ms, max_records)
        if gather_ms and len(records) >= min(GATHER_FROM, max_records):
            records += await _gather(get, stopping, gather_ms, max_records - len(records))
            if stopping.is_set():
                return
        if records and not await handle(records):
            return


Fetch = Callable[[int, int], Awaitable[list[Record]]]
"""Records fetched within a timeout (ms), at most so many."""


def _plain(consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> Fetch:
    async def get(timeout_ms: int, max_records: int) -> list[Record]:
        batch = await fetch(consumer, stopping, timeout_ms, max_records)
        return [r for partition in batch.values() for r in partition]

    return get


def _aligned(consumer: AIOKafkaConsumer, stopping: asyncio.Event, max_records: int) -> Fetch:
    fetcher = AlignedFetcher(consumer, max_records, 0, as_they_come_when_caught_up=True)

    async def get(timeout_ms: int, max_records: int) -> list[Record]:
        return await fetcher.next_batch(stopping, timeout_ms, max_records)

    return get


async def _gather(get: Fetch, stopping: asyncio.Event, gather_ms: int, room: int) -> list[Record]:
    """Up to ``room`` more records, fetched for up to ``gather_ms``."""
    deadline = time.monotonic() + gather_ms / 1000
    gathered: list[Record] = []
    while len(gathered) < room and not stopping.is_set():
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        gathered += await get(left_ms, room - len(gathered))
    return gathered


async def fetch(
    consumer: AIOKafkaConsumer, stopping: asyncio.Event, timeout_ms: int, max_records: int
) -> dict[TopicPartition, list[Record]]:
    """One fetch; while the broker is away, waits and tries again instead of failing."""
    while True:
        try:
            batch: dict[TopicPartition, list[Record]] = await consumer.getmany(
                timeout_ms=timeout_ms, max_records=max_records
            )
            return batch
        except KafkaError as exc:
            log.warning("fetch failed; retrying", extra={"error": str(exc)})
            if stopping.is_set():
                return {}
            await asyncio.sleep(1.0)


def json_values(records: Iterable[Record]) -> list[Any]:
    """The records' JSON values; one that does not parse is logged and left out (our own topics
    carry only what our services wrote)."""
    values = []
    for r in records:
        try:
            values.append(orjson.loads(r.value))
        except orjson.JSONDecodeError:
            log.error(
                "unreadable message skipped",
                extra={"topic": r.topic, "partition": r.partition, "offset": r.offset},
            )
    return values


@functools.cache
def _partitioner(count: int) -> Callable[[bytes], int]:
    """The default partitioner's choice among ``count`` partitions, remembered per key: its
    murmur2 is pure Python, and the same item keys come back all the time."""
    everything = list(range(count))
    partitioner = DefaultPartitioner()

    @functools.lru_cache(maxsize=200_000)
    def choose(key: bytes) -> int:
        return int(partitioner(key, everything, everything))

    return choose


async def send_keyed(
    producer: AIOKafkaProducer, topic: str, messages: Sequence[tuple[bytes, bytes]]
) -> int:
    """Send keyed messages in per-partition batches, returning once the broker has them all.

    Each key goes to the partition the default partitioner would choose (murmur2, as Kafka's
    own clients), in order, so per-key order and compaction are as with ``send``; building the
    batches here costs a fraction of a ``send`` per message, which matters on a relay.

    The batches are closed as they are handed over, so they go out at once: aiokafka holds an
    open batch for ``linger_ms`` in case ``send`` adds to it, a wait that only delays these.
    They are all handed over before the sender runs, so they still travel in one request.
    """
    if not messages:
        return 0
    partitions = sorted(await producer.partitions_for(topic))
    chosen = _partitioner(len(partitions))
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in messages:
        by_partition.setdefault(chosen(key), []).append((key, value))
    futures = []
    for partition, items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)
    return len(messages)
