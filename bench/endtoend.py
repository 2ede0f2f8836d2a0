"""End to end, with every service running as its own process: the highest input rate the suite
sustains (consumer lag bounded through a fixed window), and the real order history replayed.

Lag is read from outside the services, as an operator would: Kafka's end offsets minus each
consumer group's committed offsets (the ledger on the input topics, the projector and the
replenisher on ``stock.ledger.v1``), and the relay's backlog (ledger entries committed in
PostgreSQL but not yet published) from the ledger's own tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Producer

from services.replenisher.app import plan_pass
from shared.events.codec import Rejection, decode
from shared.kafka import client_options, librdkafka_options
from shared.settings import Settings
from shared.topics import INPUT_TOPICS, LEDGER, topic_specs

from .cpu import CpuSampler, above_idle, cpu_in_window, per_thousand, summarise
from .processes import ServiceProcess, free_port
from .progress import Progress
from .retail import DATA, ReplayStats, retail_events
from .workload import input_messages

WARM_UP = 0.1  # the share of a window left out of the lag trend (consumers settling)
HELD_SHARE = 0.95  # a step counts only if the producer reached this share of its target rate
SAMPLE_SECONDS = 0.5
STALLED = 60.0  # a replay with no progress for this long has failed


class Services:
    """The ledger, its relay, the projector and (optionally) the replenisher, each as its own
    process with a port to ask."""

    def __init__(
        self, settings: Settings, logs: Path, tag: str, replenisher: bool, **env: str
    ) -> None:
        """``env``: settings for all four (``STOCKLEDGER_...`` variables)."""
        self.settings = settings
        self.ledger_port = free_port()
        self.ledger = ServiceProcess(
            "services.ledger",
            settings,
            logs / f"ledger-{tag}.log",
            **env,
            STOCKLEDGER_METRICS_PORT=str(self.ledger_port),
            STOCKLEDGER_LEDGER_RELAY="false",  # as the local stack runs it: the relay apart
        )
        self.relay_port = free_port()
        self.relay = ServiceProcess(
            "services.ledger.relay",
            settings,
            logs / f"relay-{tag}.log",
            **env,
            STOCKLEDGER_METRICS_PORT=str(self.relay_port),
        )
        self.projector = ServiceProcess(
            "services.projector",
            settings,
            logs / f"projector-{tag}.log",
            **env,
            STOCKLEDGER_HTTP_PORT=str(settings.http_port),
        )
        self.replenisher_port = free_port()
        self.replenisher = (
            ServiceProcess(
                "services.replenisher",
                settings,
                logs / f"replenisher-{tag}.log",
                **env,
                STOCKLEDGER_METRICS_PORT=str(self.replenisher_port),
            )
            if replenisher
            else None
        )

    @property
    def all(self) -> dict[str, ServiceProcess]:
        named = {"ledger": self.ledger, "relay": self.relay, "projector": self.projector}
        if self.replenisher is not None:
            named["replenisher"] = self.replenisher
        return named

    def start(self) -> None:
        for service in self.all.values():
            service.start()

    async def ready(self) -> None:
        await self.ledger.wait_ready(self.ledger_port)
        await self.relay.wait_ready(self.relay_port)
        await self.projector.wait_ready(self.settings.http_port)
        if self.replenisher is not None:
            await self.replenisher.wait_ready(self.replenisher_port)

    def check(self) -> None:
        for service in self.all.values():
            service.check()

    def peaks(self) -> dict[str, int]:
        return {name: s.peak_rss for name, s in self.all.items()}

    def stop(self) -> None:
        for service in self.all.values():
            service.stop()

    @property
    def logs(self) -> list[Path]:
        return [s.log for s in self.all.values()]


class LagProbe:
    """Consumer lag of each service, read from the broker and the database."""

    def __init__(self, settings: Settings, database_url: str, replenisher: bool) -> None:
        self.settings = settings
        self.database_url = database_url
        prefix = settings.topic_prefix
        partitions = {s.name: s.partitions for s in topic_specs(prefix)}
        self.inputs = [
            TopicPartition(prefix + t, p)
            for t in INPUT_TOPICS
            for p in range(partitions[prefix + t])
        ]
        self.entries = [
            TopicPartition(prefix + LEDGER, p) for p in range(partitions[prefix + LEDGER])
        ]
        group = settings.consumer_group_prefix
        self.groups = {"ledger": (f"{group}.ledger", self.inputs)}
        self.groups["projector"] = (f"{group}.projector", self.entries)
        if replenisher:
            self.groups["replenisher"] = (f"{group}.replenisher", self.entries)
        client = client_options(settings)
        self.admin = AIOKafkaAdminClient(**client)
        self.offsets = AIOKafkaConsumer(**client, enable_auto_commit=False)
        self.conn: asyncpg.Connection | None = None

    async def start(self) -> LagProbe:
        await self.admin.start()
        await self.offsets.start()
        self.conn = await asyncpg.connect(self.database_url)
        return self

    async def close(self) -> None:
        await self.offsets.stop()
        await self.admin.close()
        if self.conn is not None:
            await self.conn.close()

    async def sample(self) -> dict[str, int]:
        """Per consumer, messages not yet committed; ``relay``, entries not yet published;
        ``inputs`` and ``entries``, the end offsets of the input and ledger topics, summed."""
        assert self.conn is not None
        # committed offsets first, then the ends: read the other way round, a consumer could
        # commit past an end read a moment earlier, and its lag would come out negative
        committed = {
            name: await self.admin.list_consumer_group_offsets(group, partitions=partitions)
            for name, (group, partitions) in self.groups.items()
        }
        ends: dict[TopicPartition, int] = await self.offsets.end_offsets(self.inputs + self.entries)
        lags: dict[str, int] = {
            "inputs": sum(ends[tp] for tp in self.inputs),
            "entries": sum(ends[tp] for tp in self.entries),
        }
        for name, (_, partitions) in self.groups.items():
            lags[name] = sum(ends[tp] - _offset(committed[name].get(tp)) for tp in partitions)
        lags["relay"] = int(
            await self.conn.fetchval(
                "SELECT count(*) FROM ledger_entries WHERE position >"
                " (SELECT coalesce(max(position), 0) FROM relay_positions)"
            )
        )
        return lags


def _offset(committed: Any) -> int:
    """A committed offset; none yet (or -1) counts as the start of the partition."""
    if committed is None or committed.offset < 0:
        return 0
    return int(committed.offset)


def c_producer(settings: Settings) -> Producer:
    """A C producer (librdkafka): the load generator should cost the services as little CPU as
    it can on a shared two-core machine."""
    return Producer(
        {
            **librdkafka_options(settings),
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1024 * 1024,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
        }
    )


def c_send(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.05)


def paced_produce(
    settings: Settings,
    rate: int,
    messages: Sequence[tuple[str, bytes, bytes]],
    stop: threading.Event,
) -> dict[str, float]:
    """The (topic, key, value) ``messages``, made beforehand, at ``rate`` events/s; runs in a
    thread. Returns what it achieved."""
    return paced_send(settings, rate, len(messages), iter(messages), stop)


def paced_send(
    settings: Settings,
    rate: int,
    total: int,
    messages: Iterator[tuple[str, bytes, bytes]],
    stop: threading.Event,
) -> dict[str, float]:
    """``total`` of the (topic, key, value) ``messages`` at ``rate`` per second, sent in 10 ms
    ticks (a message is drawn from the iterator just before it is sent). Returns what it
    achieved."""
    producer = c_producer(settings)
    prefix = settings.topic_prefix
    sent = 0
    started = time.perf_counter()
    tick = 0
    while sent < total and not stop.is_set():
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        for topic, key, value in itertools.islice(messages, due - sent):
            c_send(producer, prefix + topic, key, value)
            sent += 1
        producer.poll(0)
        tick += 1
        delay = started + tick * 0.01 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - started
    producer.flush(60)
    return {"sent": sent, "seconds": elapsed, "per_second": sent / elapsed if elapsed else 0.0}


def growth(samples: Sequence[tuple[float, int]], seconds: float) -> float:
    """How much a lag grew over the window: the least-squares slope of its samples (after the
    warm-up) times the window. A consumer that keeps up has a saw-tooth lag, slope about 0."""
    points = [(t, v) for t, v in samples if t >= WARM_UP * seconds] or list(samples)
    if len(points) < 2:
        return 0.0
    ts, vs = [float(t) for t, _ in points], [float(v) for _, v in points]
    if max(ts) == min(ts):
        return 0.0
    return statistics.linear_regression(ts, vs).slope * seconds


async def _drain(probe: LagProbe, services: Services, limit: float) -> float | None:
    """Seconds until every consumer has caught up after the input stopped; None: not within
    ``limit`` seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        services.check()
        lags = await probe.sample()
        if all(lags[name] == 0 for name in (*probe.groups, "relay")):
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    return None


@dataclass(frozen=True)
class CpuRun:
    """A steady ``rate`` for ``warm_up`` seconds, then ``seconds`` measured in ``windows``
    consecutive windows."""

    rate: int = 5_000
    seconds: float = 60.0
    windows: int = 3
    warm_up: float = 10.0
    idle: float = 10.0  # seconds read before the input starts: each process's cost at rest

    @property
    def start(self) -> datetime:
        """When the run's first event occurs. Its events occur at the rate they are sent, so
        event time runs as a wall clock does in live operation, and the day turns a third of
        the way into the warm-up: the replenisher's first planning pass (due once event time
        has passed the first day it saw) runs then, and no other falls due in the measured
        windows (they end before the next day). In live operation a pass comes once every
        ``plan_every_days`` days, a negligible cost per event, so it is read apart
        (:func:`planning_pass`). With the events one second apart, as the other runs have
        them, event time ran ``rate`` times faster than a wall clock, and a pass over every
        item fell due every two minutes at 5,000 events/s."""
        return datetime(2011, 1, 2, tzinfo=UTC) - timedelta(seconds=self.warm_up / 3)


async def sustained(
    settings: Settings,
    database_url: str,
    rates: Iterable[int],
    seconds: float,
    replenisher: bool,
    logs: Path,
    tag: str,
    refine: int = 2,
    cpu: CpuRun | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """First, with ``cpu``, the CPU time of every process per 1,000 events at its steady rate
    (on the fresh database, before any rate is tried), and once the services have stopped, the
    CPU time of a planning pass over the items of the run. Then input at each rate in turn for
    ``seconds``, until a rate is not held: the producer falls short of it, a lag (ledger, relay,
    projector) grows through the window by more than one second of its inflow (or one batch,
    whichever is larger), or the backlog does not drain within 30 s once the input stops. Then
    up to ``refine`` more rates, each halfway between the highest rate held and the lowest not
    held (to the nearest 500). Returns the figures and the services' log files."""
    services = Services(settings, logs, tag, replenisher)
    services.start()
    probe = await LagProbe(settings, database_url, replenisher).start()
    cpu_figures: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    overall: dict[str, int] = {}
    stop = threading.Event()

    async def step(rate: int) -> dict[str, Any]:
        for service in services.all.values():
            service.reset_peak()
        result = await _step(settings, services, probe, rate, seconds, 1000 + len(steps), stop)
        for name, peak in result["peak_rss_bytes"].items():
            overall[name] = max(overall.get(name, 0), peak)
        steps.append(result)
        return result

    try:
        await services.ready()
        if cpu is not None and cpu.seconds > 0:
            cpu_figures = await cpu_per_event(settings, database_url, services, probe, cpu, stop)
            if await _drain(probe, services, 300.0) is None:
                raise RuntimeError("the backlog of the CPU run did not drain within 300 s")
        for rate in rates:
            if not (await step(rate))["held"]:
                break
        for _ in range(refine):
            low = max((s["rate"] for s in steps if s["held"]), default=0)
            high = min((s["rate"] for s in steps if not s["held"]), default=0)
            middle = round((low + high) / 2 / 500) * 500
            if not high or middle <= low or middle >= high:
                break
            # the backlog of the rate not held goes first, or it would count against the next
            if await _drain(probe, services, 300.0) is None:
                break
            await step(middle)
    finally:
        stop.set()
        await probe.close()
        services.stop()
    held = sorted((s for s in steps if s["held"]), key=lambda s: int(s["rate"]))
    best = held[-1] if held else None
    not_held = sorted((s for s in steps if not s["held"]), key=lambda s: int(s["rate"]))
    result: dict[str, Any] = {
        "seconds_per_rate": seconds,
        "replenisher": replenisher,
        "held_rate": best["rate"] if best else 0,
        "held_achieved_per_second": best["achieved_per_second"] if best else 0.0,
        "peak_rss_bytes": best["peak_rss_bytes"] if best else {},
        "peak_rss_bytes_all_rates": overall,
        "lowest_not_held": not_held[0] if not_held else None,
        "steps": steps,
    }
    if cpu_figures is not None:
        result["cpu_ms_per_1000_events"] = cpu_figures["total"]["mean"]
        result["cpu_ms_per_1000_events_by_process"] = {
            name: figures["mean"] for name, figures in cpu_figures["by_process"].items()
        }
        result["cpu_ms_per_1000_events_above_idle"] = cpu_figures["above_idle"]["total"]["mean"]
        result["cpu"] = cpu_figures
        if replenisher:
            result["planning_pass"] = await planning_pass(settings, database_url)
    return result, services.logs


async def planning_pass(settings: Settings, database_url: str) -> dict[str, Any]:
    """The CPU time of one planning pass of the replenisher (``plan_pass``: every item's lines
    plan and the reorder points) over the items of ``database_url`` as of its latest day,
    run here with the services stopped: this process's and its PostgreSQL backend's, in all
    and per 1,000 items."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        backend = psutil.Process(await pool.fetchval("SELECT pg_backend_pid()"))
        today = await pool.fetchval("SELECT max(day) FROM demand_lines")
        if today is None:
            return {"items": 0}

        def clocks() -> tuple[float, float, float]:
            times = backend.cpu_times()
            return time.perf_counter(), time.process_time(), times.user + times.system

        before = clocks()
        planned = await plan_pass(pool, settings, today)
        after = clocks()
    finally:
        await pool.close()
    wall, own, server = (a - b for a, b in zip(after, before, strict=True))
    items = int(planned["items"])
    return {
        "day": today.isoformat(),
        "items": items,
        "seconds": wall,
        "cpu_seconds": own,
        "backend_cpu_seconds": server,
        "cpu_seconds_per_1000_items": (own + server) * 1000 / items if items else 0.0,
    }


async def cpu_per_event(
    settings: Settings,
    database_url: str,
    services: Services,
    probe: LagProbe,
    run: CpuRun,
    stop: threading.Event,
) -> dict[str, Any]:
    """The CPU time of every process of the suite per 1,000 input events at ``run.rate``, in
    each of ``run.windows`` windows after the warm-up (see bench.cpu), and whether the rate was
    below saturation (no lag grew through the measured part by more than a second of input)."""
    total = int(run.rate * (run.warm_up + run.seconds + 2))
    messages = await asyncio.to_thread(
        lambda: list(input_messages(total, seed=999, start=run.start, per_second=run.rate))
    )
    pids = {name: s.proc.pid for name, s in services.all.items() if s.proc is not None}
    sampler = await CpuSampler(pids, settings.kafka_bootstrap_servers, database_url).start()
    idle: dict[str, float] = {}
    if run.idle > 0:  # no input yet: what each process spends at rest, per second
        sampler.samples.append(await sampler.sample())
        at_rest = time.perf_counter()
        while (waited := time.perf_counter() - at_rest) < run.idle:
            await asyncio.sleep(min(1.0, run.idle - waited))
            services.check()
            sampler.samples.append(await sampler.sample())
        seconds = time.perf_counter() - at_rest
        idle = {
            name: cpu * 1000 / seconds
            for name, cpu in cpu_in_window(sampler.samples, 0, len(sampler.samples) - 1).items()
        }
    producing = asyncio.ensure_future(
        asyncio.to_thread(paced_produce, settings, run.rate, messages, stop)
    )
    marks: list[tuple[int, int, float]] = []  # (sample index, input end offsets, time)
    lags: list[tuple[float, dict[str, int]]] = []  # seconds into the measured part, lags
    started = time.perf_counter()
    measured = started + run.warm_up
    length = run.seconds / run.windows
    try:
        with Progress(f"cpu at {run.rate:,}/s", round(run.warm_up + run.seconds)) as progress:
            for n in range(run.windows + 1):
                boundary = measured + n * length
                while (now := time.perf_counter()) < boundary:
                    services.check()
                    if producing.done():
                        raise RuntimeError(f"the producer stopped early: {producing.result()}")
                    await asyncio.sleep(min(1.0, boundary - now))
                    sampler.samples.append(await sampler.sample())
                    if n:
                        lags.append((time.perf_counter() - measured, await probe.sample()))
                    progress.update(round(time.perf_counter() - started))
                lag = await probe.sample()
                sampler.samples.append(await sampler.sample())
                marks.append((len(sampler.samples) - 1, lag["inputs"], time.perf_counter()))
                lags.append((time.perf_counter() - measured, lag))
    finally:
        await sampler.close()
        if not producing.done():
            stop.set()
        with contextlib.suppress(Exception):
            await producing
        stop.clear()
    windows: list[dict[str, Any]] = []
    for (i, before, t0), (j, after, t1) in itertools.pairwise(marks):
        events = after - before
        ms = per_thousand(cpu_in_window(sampler.samples, i, j), events)
        windows.append(
            {
                "events": events,
                "seconds": t1 - t0,
                "events_per_second": events / (t1 - t0),
                "ms_per_1000_events": ms,
            }
        )
    summary = summarise([w["ms_per_1000_events"] for w in windows])
    above = summarise(
        [above_idle(w["ms_per_1000_events"], idle, w["events_per_second"]) for w in windows]
    )
    growths = {
        name: growth([(t, lag[name]) for t, lag in lags], run.seconds)
        for name in (*probe.groups, "relay")
    }
    tolerance = max(float(run.rate), float(settings.batch_max_records))
    return {
        "rate": run.rate,
        "seconds": run.seconds,
        "warm_up_seconds": run.warm_up,
        "below_saturation": all(g <= tolerance for g in growths.values()),
        "lag_growth": growths,
        "lag_tolerance": tolerance,
        "windows": windows,
        **summary,
        "idle_seconds": run.idle,
        "idle_ms_per_second": idle,
        "above_idle": above,
    }


async def _step(
    settings: Settings,
    services: Services,
    probe: LagProbe,
    rate: int,
    seconds: float,
    seed: int,
    stop: threading.Event,
) -> dict[str, Any]:
    # The input is made before the window opens: encoding it as it is sent would take CPU
    # from the services that the suite's own clients, elsewhere in a deployment, do not.
    total = int(rate * seconds)
    messages = await asyncio.to_thread(lambda: list(input_messages(total, seed=seed)))
    before = await probe.sample()
    producing = asyncio.ensure_future(
        asyncio.to_thread(paced_produce, settings, rate, messages, stop)
    )
    samples: list[tuple[float, dict[str, int]]] = []
    started = time.perf_counter()
    with Progress(f"sustain {rate:,}/s", round(seconds)) as progress:
        try:
            while not producing.done():
                services.check()
                samples.append((time.perf_counter() - started, await probe.sample()))
                progress.update(min(round(seconds), round(time.perf_counter() - started)))
                await asyncio.wait({producing}, timeout=SAMPLE_SECONDS)
        finally:
            if not producing.done():
                stop.set()
                with contextlib.suppress(Exception):
                    await producing
    produced = producing.result()
    after = await probe.sample()
    samples.append((time.perf_counter() - started, after))
    elapsed = produced["seconds"] or seconds
    inflow = {
        "ledger": produced["per_second"],
        "relay": (after["entries"] - before["entries"]) / elapsed,
    }
    inflow["projector"] = inflow["relay"]
    inflow["replenisher"] = inflow["relay"]
    lags: dict[str, dict[str, float]] = {}
    held = produced["per_second"] >= HELD_SHARE * rate
    reasons = [] if held else [f"the producer reached only {produced['per_second']:,.0f}/s"]
    for name in ("ledger", "relay", "projector", "replenisher"):
        if name != "relay" and name not in probe.groups:
            continue
        series = [(t, lag[name]) for t, lag in samples]
        grew = growth(series, seconds)
        tolerance = max(inflow[name] * 1.0, float(settings.batch_max_records))
        lags[name] = {
            "growth": grew,
            "tolerance": tolerance,
            "max": max(v for _, v in series),
            "end": series[-1][1],
        }
        # the replenisher is reported, not judged: the end-to-end path is ledger to projector
        if name != "replenisher" and grew > tolerance:
            held = False
            reasons.append(f"{name} lag grew by {grew:,.0f} in {seconds:g} s")
    drained = await _drain(probe, services, 30.0) if held else None
    if held and drained is None:
        held = False
        reasons.append("the backlog did not drain within 30 s")
    return {
        "rate": rate,
        "held": held,
        "why_not": "; ".join(reasons) or None,
        "sent": produced["sent"],
        "achieved_per_second": produced["per_second"],
        "entries_per_second": inflow["relay"],
        "lag": lags,
        "drain_seconds": drained,
        "peak_rss_bytes": services.peaks(),
    }


def _produce_all(
    settings: Settings, messages: Iterator[tuple[str, bytes, bytes]]
) -> dict[str, Any]:
    """Send every message, counting the distinct events the ledger will accept (the codec's
    verdict, less repeated event ids); runs in a thread."""
    producer = c_producer(settings)
    ids: set[UUID] = set()
    sent = rejected = 0
    started = time.perf_counter()
    for topic, key, value in messages:
        event = decode(value)
        if isinstance(event, Rejection):
            rejected += 1
        else:
            ids.add(event.event_id)
        c_send(producer, settings.topic_prefix + topic, key, value)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return {
        "sent": sent,
        "valid": len(ids),
        "rejected": rejected,
        "repeated": sent - rejected - len(ids),
        "seconds": time.perf_counter() - started,
    }


async def _applied(client: httpx.AsyncClient) -> float:
    try:
        text = (await client.get("/metrics")).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("stockledger_projector_entries_applied_total "):
            return float(line.split()[1])
    return 0.0


async def retail_replay(
    settings: Settings,
    database_url: str,
    rows: int | None,
    replenisher: bool,
    logs: Path,
    tag: str,
    path: Path = DATA,
) -> tuple[dict[str, Any], list[Path]]:
    """The order history produced to the input topics first, then the services started: wall
    time from their start until the ledger has processed every valid event and the projector
    has applied every entry the ledger appended."""
    if not await asyncio.to_thread(path.exists):
        return {"skipped": f"no data at {path}"}, []
    stats = ReplayStats()
    produced = await asyncio.to_thread(
        _produce_all, settings, retail_events(path, rows=rows, stats=stats)
    )
    valid = produced["valid"]
    services = Services(settings, logs, tag, replenisher)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        services.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client:

            async def processed() -> int:
                return int(await conn.fetchval("SELECT count(*) FROM processed_events"))

            async def applied() -> int:
                return int(await _applied(client))

            await _until(services, "ledger processed", processed, valid)
            ledger_seconds = time.perf_counter() - started
            entries = int(await conn.fetchval("SELECT count(*) FROM ledger_entries"))
            await _until(services, "projector applied", applied, entries)
        wall = time.perf_counter() - started
        services.check()
    finally:
        await conn.close()
        services.stop()
    return {
        "rows": stats.rows,
        "events": valid,
        "rejected": produced["rejected"],
        "repeated": produced["repeated"],
        "entries": entries,
        "produce_seconds": produced["seconds"],
        "ledger_seconds": ledger_seconds,
        "wall_seconds": wall,
        "per_second": valid / wall,
        "replenisher": replenisher,
        "peak_rss_bytes": services.peaks(),
        "mapping": stats.as_dict(),
    }, services.logs


async def _until(
    services: Services, what: str, count: Callable[[], Awaitable[int]], target: int
) -> None:
    """Poll ``count`` until it reaches ``target``; RuntimeError when it stops moving for
    STALLED seconds (or a service dies)."""
    moved, last = time.perf_counter(), -1
    with Progress(what, target) as progress:
        while True:
            services.check()
            done = await count()
            progress.update(done)
            if done >= target:
                return
            now = time.perf_counter()
            if done != last:
                moved, last = now, done
            elif now - moved > STALLED:
                raise RuntimeError(
                    f"history replay stalled: {what} {done:,} of {target:,} for {STALLED:g} s;"
                    f" see {', '.join(map(str, services.logs))}"
                )
            await asyncio.sleep(0.25)
