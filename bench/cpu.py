"""CPU time of every process of the suite per 1,000 input events, read from ``/proc`` (psutil).

On two cores the end-to-end rate is bound by the CPU time all processes spend per event, so that
is the figure that travels between machines. Each service process (and any child of it), each
PostgreSQL backend (attributed to the process that holds the other end of its connection), the
Kafka broker and the load generator are sampled once a second; a process that starts during a
window counts from zero, one that ends counts up to its last sample.

The functions above ``CpuSampler`` are pure: they take the samples and the counts of events.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
import psutil

# (pid, start time): a pid reused by a new process is another process
ProcessKey = tuple[int, float]
BROKER = "kafka broker"
LOAD = "load generator"
PG_BACKGROUND = "postgresql background (whole server)"
PG = " (postgresql)"


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU seconds (user + system) of each process seen at ``at`` (wall-clock
    seconds, as processes' start times are), and the group each belongs to."""

    at: float
    cpu: Mapping[ProcessKey, float]
    group: Mapping[ProcessKey, str]


def backend_owners(
    backends: Mapping[int, int | None], ports: Mapping[str, Collection[int]]
) -> dict[int, str]:
    """Backend pid -> the name whose process holds the client end of its connection (its local
    port is the backend's ``client_port``); backends of no named process are left out."""
    by_port = {port: name for name, owned in ports.items() for port in owned}
    return {
        pid: by_port[port] for pid, port in backends.items() if port is not None and port in by_port
    }


def cpu_in_window(samples: Sequence[Sample], start: int, end: int) -> dict[str, float]:
    """CPU seconds per group between ``samples[start]`` and ``samples[end]``. A process absent
    from the first sample counts from zero if it started after it (else from its first sample);
    one absent from the last counts up to its last sample in the window."""
    first, window = samples[start], samples[start : end + 1]
    last_seen: dict[ProcessKey, float] = {}
    base: dict[ProcessKey, float] = {}
    group: dict[ProcessKey, str] = {}
    for sample in window:
        for key, seconds in sample.cpu.items():
            if key not in base:
                born_after = key not in first.cpu and key[1] > first.at
                base[key] = first.cpu.get(key, 0.0 if born_after else seconds)
            last_seen[key] = seconds
            group[key] = sample.group[key]
    totals: dict[str, float] = {}
    for key, seconds in last_seen.items():
        totals[group[key]] = totals.get(group[key], 0.0) + max(0.0, seconds - base[key])
    return totals


def per_thousand(cpu_seconds: Mapping[str, float], events: int) -> dict[str, float]:
    """CPU milliseconds per 1,000 events, per group."""
    if events <= 0:
        return {name: 0.0 for name in cpu_seconds}
    return {name: seconds * 1e6 / events for name, seconds in cpu_seconds.items()}


def above_idle(
    ms_per_1000: Mapping[str, float], idle_ms_per_second: Mapping[str, float], per_second: float
) -> dict[str, float]:
    """CPU ms per 1,000 events less what each process spends at rest (``idle_ms_per_second``,
    read with no input) over the time those events took at ``per_second``: the cost of the
    events themselves, with polling, timers and a shared broker's other traffic taken out."""
    return {
        name: ms - idle_ms_per_second.get(name, 0.0) * 1000 / per_second
        for name, ms in ms_per_1000.items()
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, max and sample standard deviation (0 for a single value)."""
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def in_suite_total(name: str) -> bool:
    """Whether a group counts in the suite's total: the services, their backends and the broker,
    not the load generator (nor its backend) and not the server's shared background work."""
    return not name.startswith(LOAD) and name != PG_BACKGROUND


def summarise(windows: Sequence[Mapping[str, float]]) -> dict[str, object]:
    """Per process and in total, ms per 1,000 events over the windows: the mean of each and its
    spread. ``windows``: one ms-per-1,000 map per window."""
    names = sorted({name for window in windows for name in window})
    totals = [sum(v for k, v in w.items() if in_suite_total(k)) for w in windows]
    by_process = {name: spread([w.get(name, 0.0) for w in windows]) for name in names}
    return {
        "total": spread(totals),
        "by_process": by_process,
        "in_total": [n for n in names if in_suite_total(n)],
        "left_out_of_total": [n for n in names if not in_suite_total(n)],
    }


def _port(address: str, default: int) -> int:
    return urlsplit(f"//{address}").port or default


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` on this machine, if any."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


@dataclass
class CpuSampler:
    """Samples the suite's processes: ``services`` (name -> pid), this process as the load
    generator, the broker listening on ``kafka``'s port and PostgreSQL's processes (the
    backends of ``database_url``'s database by owner, the server's background processes)."""

    services: Mapping[str, int]
    kafka: str
    database_url: str
    samples: list[Sample] = field(default_factory=list)

    async def start(self) -> CpuSampler:
        self.conn = await asyncpg.connect(self.database_url)
        url = urlsplit(self.database_url)
        self.database = url.path.lstrip("/")
        self.pg_port = url.port or 5432
        broker = listener_pid(_port(self.kafka.split(",")[0], 9092))
        self.broker = psutil.Process(broker) if broker else None
        return self

    async def close(self) -> None:
        await self.conn.close()

    def _processes(self) -> Iterable[tuple[str, psutil.Process]]:
        for name, pid in self.services.items():
            try:
                proc = psutil.Process(pid)
                yield name, proc
                for child in proc.children(recursive=True):
                    yield name, child
            except psutil.Error:
                continue
        yield LOAD, psutil.Process()
        if self.broker is not None:
            yield BROKER, self.broker

    def _client_ports(self) -> dict[str, set[int]]:
        """Per service (and the load generator), the local ports of its connections to
        PostgreSQL."""
        owners = {**self.services, LOAD: psutil.Process().pid}
        ports: dict[str, set[int]] = {}
        for name, pid in owners.items():
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            ports[name] = {c.laddr.port for c in conns if c.raddr and c.raddr.port == self.pg_port}
        return ports

    async def sample(self) -> Sample:
        rows = await self.conn.fetch(
            "SELECT pid, client_port, datname, backend_type FROM pg_stat_activity"
        )
        ours = {r["pid"]: r["client_port"] for r in rows if r["datname"] == self.database}
        owners = backend_owners(ours, self._client_ports())
        named: list[tuple[str, int]] = [(f"{owner}{PG}", pid) for pid, owner in owners.items()]
        named += [(PG_BACKGROUND, r["pid"]) for r in rows if r["backend_type"] != "client backend"]
        cpu: dict[ProcessKey, float] = {}
        group: dict[ProcessKey, str] = {}
        procs = list(self._processes())
        for name, pid in named:
            try:
                procs.append((name, psutil.Process(pid)))
            except psutil.Error:
                continue
        for name, proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            cpu[key] = times.user + times.system
            group[key] = name
        return Sample(time.time(), cpu, group)
