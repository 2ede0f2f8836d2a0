"""The services as their own processes during a benchmark, with their peak memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def write_results(report: dict[str, object], name: str) -> Path:
    """``report`` as JSON in ``bench/results/<name>.json``; prints and returns the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return path


class ServiceProcess:
    def __init__(self, module: str, settings: Settings, log: Path, **env: str) -> None:
        self.module = module
        self.log = log
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "DATABASE_URL": settings.database_url.get_secret_value(),
            "STOCKLEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "STOCKLEDGER_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
            "STOCKLEDGER_METRICS_PORT": "0",
            "STOCKLEDGER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=ROOT, env=self.env, stdout=out, stderr=out
            )
        return self

    def check(self) -> None:
        """Fail loudly if the service died; track its peak RSS."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.module} exited with {self.proc.returncode}; see {self.log}")
        self.peak_rss = max(self.peak_rss, rss_bytes(self.proc.pid))

    def reset_peak(self) -> None:
        """Start a new peak: the next check()es measure a new step."""
        self.peak_rss = 0

    async def wait_ready(self, port: int, within: float = 60.0) -> None:
        """Until the service answers 200 on ``/readyz`` at ``port`` (its HTTP or metrics port);
        TimeoutError after ``within`` seconds."""
        async with (
            asyncio.timeout(within),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            while True:
                self.check()
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def status_kib(pid: int) -> dict[str, int]:
    """``VmHWM`` and ``VmRSS`` of ``pid``, in KiB (0 when it is gone)."""
    figures = {"VmHWM": 0, "VmRSS": 0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in figures:
                    figures[name] = int(value.split()[0])
    except OSError:
        pass
    return figures


def rss_bytes(pid: int) -> int:
    return status_kib(pid)["VmRSS"] * 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """User and system CPU time a process has used so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, like Ctrl-C, so that cleanup runs: services stopped,
    scratch data dropped."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
