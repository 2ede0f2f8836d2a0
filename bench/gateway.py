"""``python -m bench.gateway``: the gateway's rates on this machine, against the local Kafka and
PostgreSQL (``make up`` or ``stack.sh infra``), in a scratch database and topics.

1. Signed Shopify webhooks per second: ``orders/create`` deliveries, each of its own order and
   webhook id, sent by ``--concurrency`` clients; each answer comes after Kafka acknowledged.
2. Response times at a steady rate: ``--steady-rate`` webhooks/s for ``--steady-seconds``, each
   sent at its scheduled time whatever the answers before it (an open loop); a response time runs
   from the scheduled time to the answer, so that a client falling behind counts too.
3. Outbound deliveries per second: ``--deliveries`` replenishment requests published to
   ``replenishment.requests.v1`` (spread over 500 items), delivered signed to one local receiver
   that answers 204; from the first publish to the last delivery taken.

Runs 1 and 2 give the CPU time the gateway process and this load client (which shares the
machine's cores with it) spent per 1,000 webhooks, read from ``/proc``: steadier than a rate on a
machine where other work runs too. The client builds and signs its requests before the clock
starts, and sends them over plain HTTP/1.1 keep-alive connections, so that it takes little of
the CPU it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.domain.signatures import new_secret
from shared.http import serve_http
from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import REPLENISHMENT_REQUESTS

from .processes import RESULTS, ServiceProcess, cpu_seconds, free_port, write_results
from .scratch import scratch_stack

TOKEN = "bench-token"  # noqa: S105 - a scratch gateway's, gone after the run
SECRET = "bench-shopify-secret"  # noqa: S105


def order(order_id: int) -> dict[str, Any]:
    """An orders/create body with the fields the gateway reads (Shopify's REST order shape)."""
    return {
        "id": order_id,
        "created_at": "2026-11-30T10:15:00-05:00",
        "location_id": None,
        "line_items": [
            {"id": order_id * 10 + n, "sku": f"B{(order_id + n) % 500}", "quantity": 1 + n}
            for n in range(3)
        ],
    }


def signed(body: bytes, webhook_id: str) -> dict[str, str]:
    digest = hmac.digest(SECRET.encode(), body, hashlib.sha256)
    return {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": "bench.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json",
    }


def webhook_request(order_id: int, webhook_id: str) -> bytes:
    """One signed orders/create webhook as the HTTP/1.1 request bytes a shop would send."""
    body = orjson.dumps(order(order_id))
    head = "".join(f"{name}: {value}\r\n" for name, value in signed(body, webhook_id).items())
    return (
        f"POST /v1/webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Connection:
    """A keep-alive HTTP/1.1 connection that sends ready-made requests, one at a time: a load
    client light enough that the CPU it takes from the machine (whose cores the gateway shares)
    is small beside the gateway's own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """The answer's status and body."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        assert at >= 0, head  # the gateway's answers are never chunked
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        return int(head[9:12]), await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class CpuPer1000:
    """CPU seconds the gateway and this client spend over a run, per 1,000 webhooks."""

    def __init__(self, gateway_pid: int) -> None:
        self.pid = gateway_pid
        self.gateway, self.client = cpu_seconds(gateway_pid), cpu_seconds()

    def figures(self, webhooks: int) -> dict[str, float]:
        gateway = cpu_seconds(self.pid) - self.gateway
        client = cpu_seconds() - self.client
        return {
            "gateway_cpu_s_per_1000": round(gateway * 1000 / webhooks, 3),
            "client_cpu_s_per_1000": round(client * 1000 / webhooks, 3),
        }


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def webhooks_per_second(
    port: int, gateway_pid: int, count: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    requests = [webhook_request(10_000_000 + n, f"bench-{n}") for n in range(count)]
    requests.reverse()
    connections = [await Connection.open(port) for _ in range(concurrency)]

    async def client(connection: Connection) -> None:
        while requests:
            request = requests.pop()
            started = time.perf_counter()
            status, answer = await connection.send(request)
            latencies.append(time.perf_counter() - started)
            assert status == 200, answer

    cpu = CpuPer1000(gateway_pid)
    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    figures = cpu.figures(count)
    for connection in connections:
        await connection.close()
    return {
        "webhooks": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        **percentiles(latencies),
        **figures,
    }


async def steady_rate(port: int, gateway_pid: int, rate: int, seconds: float) -> dict[str, Any]:
    """``rate`` webhooks/s for ``seconds``, each sent at its time (an open loop) on the idle
    keep-alive connection used last, or a new one when none is idle (the server closes those
    left idle for a while); a response time runs from that scheduled time to the answer."""
    count = int(rate * seconds)
    latencies: list[float] = []
    # order ids of their own, apart from the closed-loop run's
    requests = [webhook_request(20_000_000 + n, f"steady-{n}") for n in range(count)]
    idle = [await Connection.open(port) for _ in range(8)]
    opened = len(idle)

    async def send(request: bytes, due: float) -> None:
        nonlocal opened
        while idle and idle[-1].reader.at_eof():  # idle too long: the server closed it
            await idle.pop().close()
        if idle:
            connection = idle.pop()
        else:
            connection = await Connection.open(port)
            opened += 1
        status, answer = await connection.send(request)
        latencies.append(time.perf_counter() - due)
        idle.append(connection)
        assert status == 200, answer

    cpu = CpuPer1000(gateway_pid)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for n, request in enumerate(requests):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.create_task(send(request, due))
    elapsed = time.perf_counter() - started
    figures = cpu.figures(count)
    for connection in idle:
        await connection.close()
    return {
        "rate": rate,
        "webhooks": count,
        "seconds": round(elapsed, 3),
        "achieved_per_second": round(count / elapsed, 1),
        "connections": opened,
        **percentiles(latencies),
        **figures,
    }


async def deliveries_per_second(settings: Settings, port: int, count: int) -> dict[str, Any]:
    taken: set[str] = set()
    done = asyncio.Event()

    async def hook(request: Request) -> Response:
        await request.body()
        taken.add(request.headers["webhook-id"])
        if len(taken) >= count:
            done.set()
        return Response(status_code=204)

    receiver_port, stopping = free_port(), asyncio.Event()
    receiver = asyncio.create_task(
        serve_http(
            Starlette(routes=[Route("/", hook, methods=["POST"])]),
            "127.0.0.1",
            receiver_port,
            stopping,
        )
    )
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answer = await http.put(
            "/v1/webhooks/endpoints",
            params={"name": "bench"},
            content=orjson.dumps(
                {"url": f"http://127.0.0.1:{receiver_port}/", "secret": new_secret()}
            ),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 201, answer.text
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for n in range(count):
            sku, location = f"B{n % 500}", "main"
            event = {
                "event_id": str(uuid.uuid4()),
                "type": "replenishment.requested",
                "schema_version": 1,
                "occurred_at": "2026-12-01T00:00:00Z",
                "data": {
                    "request_id": f"b-{n}",
                    "sku": sku,
                    "location": location,
                    "qty": 5,
                    "kind": "purchase",
                    "needed_by": "2026-12-08T00:00:00Z",
                    "reason": {},
                },
            }
            futures.append(
                await producer.send(
                    settings.topic_prefix + REPLENISHMENT_REQUESTS,
                    orjson.dumps(event),
                    key=f"{location}|{sku}".encode(),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    async with asyncio.timeout(600):
        await done.wait()
    elapsed = time.perf_counter() - started
    stopping.set()
    await receiver
    return {
        "deliveries": count,
        "items": 500,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
    }


async def main(
    webhooks: int, deliveries: int, concurrency: int, rate: int, seconds: float
) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    load = os.getloadavg()
    async with scratch_stack(Settings(), keep=False) as (settings, _, tag):
        port = free_port()
        gateway = ServiceProcess(
            "services.gateway",
            settings,
            Path(RESULTS / f"gateway-{tag}.log"),
            STOCKLEDGER_GATEWAY_PORT=str(port),
            STOCKLEDGER_API_TOKEN=TOKEN,
            STOCKLEDGER_SHOPIFY_WEBHOOK_SECRET=SECRET,
        ).start()
        try:
            await gateway.wait_ready(port)
            assert gateway.proc is not None
            pid = gateway.proc.pid
            inbound = await webhooks_per_second(port, pid, webhooks, concurrency)
            print(f"signed Shopify webhooks: {inbound}")
            gateway.check()
            steady = await steady_rate(port, pid, rate, seconds) if seconds > 0 else None
            print(f"steady rate: {steady}")
            gateway.check()
            outbound = (
                await deliveries_per_second(settings, port, deliveries) if deliveries else None
            )
            print(f"outbound deliveries: {outbound}")
            gateway.check()
        finally:
            gateway.stop()
    return {
        "inbound_webhooks": inbound,
        "steady_rate": steady,
        "outbound_deliveries": outbound,
        "load_average_at_start": [round(x, 2) for x in load],
        "gateway_peak_rss_mb": round(gateway.peak_rss / 2**20, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--steady-rate", type=int, default=200, help="webhooks/s (200)")
    parser.add_argument(
        "--steady-seconds", type=float, default=30.0, help="how long; 0 skips it (30)"
    )
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(
            main(
                args.webhooks,
                args.deliveries,
                args.concurrency,
                args.steady_rate,
                args.steady_seconds,
            )
        )
    write_results(report, "gateway")
