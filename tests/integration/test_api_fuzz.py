"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis), against the real servers.

The ledger and the projector run in-process with some stock recorded under odd SKUs; then every
operation of ``/openapi.json`` gets generated requests, both schema-valid (positive) and
schema-violating (negative), ``PUT /v1/policies`` with the right token, none and a wrong one, and
the stock endpoints again with a recorded sku and location fixed (so generated times, limits and
positions reach the database). Whatever is sent, no answer is a 5xx, and every error is JSON
``{"error": code, "detail": text}``.

schemathesis' other checks (conformance of answers to the document) are run and reported in the
test's output, not asserted: see ``other`` in :class:`Findings`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err

from services.gateway.app import create_service as create_gateway
from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from shared.settings import Settings

from .. import events as ev
from ..gateway_fixtures import shopify_headers, shopify_order, woo_headers
from ..kafka_io import eventually
from ..services import free_port, running, with_port
from .test_projector import caught_up, publish

pytestmark = [
    pytest.mark.integration,
    # schemathesis' strategies use `random` inside; its own runner silences this warning too.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

T = TypeVar("T")
TOKEN = "t"
CASES = 30  # per operation and generation mode (and token variant, and fixed item)
BUDGET_S = 60.0  # for all generated requests together; past it the remaining cases send nothing
ODD = ["BANK CHARGES", "a/b", "what?", "fish & chips", "tasse à café", "#1 50%", "x+y=z", "Ω 🙂"]
AUTH = {"token": f"Bearer {TOKEN}", "no token": None, "wrong token": "Bearer nope"}
KNOWN = {"sku": "a/b", "location": "UK"}  # recorded below, so generated requests find data
# Hand-picked values at the edges of what the parameters' checks accept.
EDGE_TIMES = [
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-00:01",
    "9999-12-31T23:59:59.999999999Z",
    "2011-07-01 08:26:00z",
    "2011-02-29T00:00:00Z",
    "2011-07-01T08:26:00+24:00",
]
EDGE_NUMBERS = ["0", "-0", "1e3", "1_000", "１２", "9" * 30, "9" * 5000, "0x10", " 5", "NaN", ""]
EDGE_CODES = ["\x00", " a", "a ", "a" * 64, "a" * 65, "🙂" * 64, "\u200b", "%", "a\nb", "a b"]


@dataclass
class Findings:
    """What the fuzzing saw; server errors, shapeless errors and auth mistakes fail the test."""

    server_errors: list[str] = field(default_factory=list)
    bad_errors: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    other: Counter[str] = field(default_factory=Counter)  # schemathesis' other checks: reported
    examples: dict[str, str] = field(default_factory=dict)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())

    def inspect(self, label: str, status: int, content_type: str, body: bytes, how: str) -> None:
        """The two rules every answer keeps: no 5xx; errors in the contract's JSON shape."""
        self.statuses.setdefault(label, Counter())[status] += 1
        if status >= 500:
            self.server_errors.append(f"{label}: {status} {body[:300]!r}\n{how}")
        problem = error_body_problem(status, content_type, body)
        if problem:
            self.bad_errors.append(f"{label}: {problem}\n{how}")

    def report(self, elapsed: float) -> str:
        statuses = "\n".join(f"  {label}: {dict(c)}" for label, c in self.statuses.items())
        others = "\n".join(
            f"  {n} × {what}\n    e.g. {self.examples[what]}"
            for what, n in self.other.most_common()
        )
        return (
            f"{self.total()} requests in {elapsed:.1f}s\n{statuses}\n"
            f"no case to generate: {self.skipped}\n"
            f"other schemathesis checks failed (not asserted):\n{others or '  none'}"
        )


def error_body_problem(status: int, content_type: str, body: bytes) -> str | None:
    """Why an error answer is not the contract's JSON ``{"error": code, "detail": text}``."""
    if status < 400:
        return None
    if not content_type.startswith("application/json"):
        return f"{status} with content-type {content_type!r}: {body[:200]!r}"
    try:
        parsed = httpx.Response(status, content=body).json()
    except ValueError:
        return f"{status} body is not JSON: {body[:200]!r}"
    if not isinstance(parsed, dict):
        return f"{status} body is not an object: {parsed!r}"
    if not isinstance(parsed.get("error"), str) or not isinstance(parsed.get("detail"), str):
        return f"{status} body lacks error/detail strings: {parsed!r}"
    if "Traceback" in body.decode("utf-8", "replace"):
        return f"{status} body has a stack trace"
    return None


def content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")
    return str(value[0] if isinstance(value, list) and value else value)


def again_if_dropped(send: Callable[[], T]) -> T:
    """Send; once more if the connection was dropped. The server closes a keep-alive connection
    after a request that raised (that request is reported by its 500), so the next request on it
    is reset through no fault of its own."""
    try:
        return send()
    except requests.ConnectionError:
        return send()


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    found: Findings,
    deadline: float,
    authorization: str | None = None,
    query: dict[str, str] | None = None,
) -> None:
    method = operation.method.upper()
    label = f"{method} {operation.path} {mode.value}"
    if method == "PUT":
        label += f" [{authorization or 'no token'}]"
    if query:
        label += f" {query}"
    extra = {} if authorization is None else {"Authorization": authorization}
    try:
        strategy = operation.as_strategy(generation_mode=mode, query=query)
    except Exception as exc:  # schemathesis cannot build cases for it: reported, not hidden
        found.skipped.append(f"{label}: {type(exc).__name__}: {exc}")
        return

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        if method == "PUT" and authorization is None and case.headers:
            # schemathesis makes up a bearer token for the security scheme; here, none is sent.
            for name in [n for n in case.headers if n.lower() == "authorization"]:
                del case.headers[name]
        curl = case.as_curl_command(headers=extra)
        try:
            response = again_if_dropped(
                lambda: case.call(base_url=base_url, session=session, headers=extra, timeout=10)
            )
        except requests.ConnectionError as exc:
            found.server_errors.append(f"{label}: the connection failed twice: {exc}\n{curl}")
            return
        found.inspect(label, response.status_code, content_type(response), response.content, curl)
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=extra)
        except FailureGroup as failures:
            found.server_errors.append(f"{label}: {failures.exceptions[0].title}\n{curl}")
        try:  # the rest of schemathesis' checks, to report (conformance to the document)
            case.validate_response(
                response,
                headers=extra,
                excluded_checks=[not_a_server_error],
                transport_kwargs={"base_url": base_url, "session": session, "headers": extra},
            )
        except FailureGroup as failures:
            for failure in failures.exceptions:
                what = f"{label}: {failure.title}"
                found.other[what] += 1
                found.examples.setdefault(what, f"{curl}\n    {failure.message[:600]}")
        if method != "PUT":
            return
        sent = response.request.headers.get("Authorization") or ""
        if mode == GenerationMode.POSITIVE and sent != extra.get("Authorization", ""):
            # (negative cases may drop the header on purpose: "missing security")
            found.auth.append(f"{label}: sent {sent!r}, not {extra}\n{curl}")
        scheme, _, given_token = sent.partition(" ")
        expected = None  # the right token: 200, or 400 for a bad policy or parameter
        if scheme.lower() != "bearer" or not given_token:
            expected = 401
        elif given_token != TOKEN:
            expected = 403
        if expected is not None and response.status_code != expected:
            found.auth.append(f"{label}: {response.status_code}, not {expected}\n{curl}")
        if response.status_code == 200:  # what was stored reads back
            shown = session.get(base_url + operation.path, params=case.query, timeout=10)
            found.inspect(
                f"GET {operation.path} after a PUT",
                shown.status_code,
                shown.headers.get("content-type", ""),
                shown.content,
                curl,
            )

    try:
        run()
    except Unsatisfiable:  # negative mode, and nothing in the operation to make invalid
        found.skipped.append(label)


def probe(
    base_url: str, session: requests.Session, found: Findings, document: dict[str, Any]
) -> None:
    """Hand-picked edge values, and the methods the document does not declare (405)."""
    requests_: list[tuple[str, str, dict[str, str]]] = []
    for at in EDGE_TIMES:
        requests_.append(("GET", "/v1/stock", {**KNOWN, "as_of": at}))
    for n in EDGE_NUMBERS:
        requests_.append(("GET", "/v1/stock/ledger", {**KNOWN, "limit": n}))
        requests_.append(("GET", "/v1/stock/ledger", {**KNOWN, "after": n}))
        requests_.append(("GET", "/v1/locations/stock", {"location": "UK", "limit": n}))
        requests_.append(("GET", "/v1/replenishment/requests", {"limit": n}))
    for code in EDGE_CODES:
        requests_.append(("GET", "/v1/stock", {"sku": code}))
        requests_.append(("GET", "/v1/stock", {"sku": "a/b", "location": code}))
        requests_.append(("GET", "/v1/locations/stock", {"location": "UK", "after": code}))
        requests_.append(("GET", "/v1/policies", {"sku": code, "location": "UK"}))
        requests_.append(("GET", "/v1/replenishment/requests", {"sku": code}))
    for path, methods in document["paths"].items():
        for method in ("DELETE", "PATCH", "POST", "PUT"):
            if method.lower() not in methods:
                requests_.append((method, path, {}))
    for method, path, params in requests_:
        try:
            answer = again_if_dropped(
                partial(session.request, method, base_url + path, params=params, timeout=10)
            )
        except requests.ConnectionError as exc:
            found.server_errors.append(f"{method} {path} {params}: the connection failed: {exc}")
            continue
        found.inspect(
            f"{method} {path} hand-picked",
            answer.status_code,
            answer.headers.get("content-type", ""),
            answer.content,
            f"{method} {answer.url}",
        )


def fuzz(document: dict[str, Any], base_url: str) -> Findings:
    """Every operation, positive and negative; runs in a worker thread (requests is blocking)."""
    schema = schemathesis.openapi.from_dict(document)
    found = Findings()
    deadline = time.monotonic() + BUDGET_S
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment names
        for result in schema.get_all_operations():
            if isinstance(result, Err):  # the document itself is broken here
                found.bad_errors.append(f"invalid operation in the document: {result.err()}")
                continue
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if operation.method.upper() == "PUT":
                    for authorization in AUTH.values():
                        fuzz_operation(
                            operation, mode, base_url, session, found, deadline, authorization
                        )
                    continue
                fuzz_operation(operation, mode, base_url, session, found, deadline)
                if operation.path in ("/v1/stock", "/v1/stock/ledger"):
                    fuzz_operation(operation, mode, base_url, session, found, deadline, query=KNOWN)
        probe(base_url, session, found, document)
    return found


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    settings = with_port(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    async with running(create_ledger(settings)), running(create_projector(settings)):
        yield settings, f"http://127.0.0.1:{settings.http_port}"


async def test_no_generated_request_gets_a_server_error_or_a_shapeless_error(
    api: tuple[Settings, str],
) -> None:
    settings, base_url = api
    events = []
    for n, sku in enumerate(ODD):
        events += [
            ev.received(sku, "UK", 10 + n),
            ev.received(sku, "EU/1", 4),
            ev.placed(f"O-{sku}", "UK", [("1", sku, 12 + 2 * n)]),  # oversold from the third
            ev.adjusted(sku, "EU/1", 1, "damaged"),
        ]
    events += [ev.transferred("a/b", "UK", "EU/1", 2, "T1"), ev.received("a/b", "UK", 5)]
    await publish(settings, events)
    await eventually(lambda: caught_up(settings))
    async with httpx.AsyncClient(base_url=base_url) as client:
        document = (await client.get("/openapi.json")).json()

    started = time.monotonic()
    found = await asyncio.to_thread(fuzz, document, base_url)
    report = found.report(time.monotonic() - started)

    assert not found.server_errors, "\n\n".join(found.server_errors[:10]) + "\n" + report
    assert not found.bad_errors, "\n\n".join(found.bad_errors[:10]) + "\n" + report
    assert not found.auth, "\n\n".join(found.auth[:10]) + "\n" + report
    assert found.total() >= 10 * CASES, report
    print(report)  # shown with -s or -rP


def fuzz_gateway(document: dict[str, Any], base_url: str) -> Findings:
    """Every gateway operation, positive and negative, with the right token, none and a wrong
    one; then signed webhooks of generated bodies, which pass the signature and reach the
    mappings. Runs in a worker thread."""
    schema = schemathesis.openapi.from_dict(document)
    found = Findings()
    deadline = time.monotonic() + BUDGET_S
    with requests.Session() as session:
        session.trust_env = False
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                found.bad_errors.append(f"invalid operation in the document: {result.err()}")
                continue
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for authorization in AUTH.values():
                    fuzz_operation(
                        operation, mode, base_url, session, found, deadline, authorization
                    )
        signed_webhooks(base_url, session, found)
    return found


def signed_webhooks(base_url: str, session: requests.Session, found: Findings) -> None:
    """Odd bodies under valid signatures: whatever a shop sends, no 5xx."""
    order = shopify_order()
    bodies: list[Any] = [
        {},
        [],
        None,
        "x",
        {"id": None, "line_items": None},
        {"id": 1, "line_items": [{"id": 2, "sku": "a" * 65, "quantity": 1}]},
        {"id": 1, "line_items": [{"id": 2, "sku": " padded ", "quantity": 1}]},
        {"id": 1, "line_items": [{"id": 2, "sku": "S", "quantity": 10**12}]},
        {"id": 1, "line_items": [{"id": None, "sku": "S", "quantity": 1}] * 2},
        {"id": 1, "created_at": "not a time", "line_items": order["line_items"]},
        {"id": 1, "refund_line_items": [{"restock_type": "return", "line_item": "x"}]},
        {"id": 1, "refund_line_items": [{"restock_type": "cancel"}] * 2},
        {"id": 1, "status": "completed", "line_items": [{"id": 3, "sku": "S", "quantity": 1}]},
        order,
    ]
    for n, body in enumerate(bodies):
        raw = orjson.dumps(body)
        for topic in ("orders/create", "orders/cancelled", "fulfillments/create", "refunds/create"):
            headers = shopify_headers(raw, topic, f"fuzz-{n}", "dev-shopify-secret")
            answer = session.post(
                base_url + "/v1/webhooks/shopify", data=raw, headers=headers, timeout=10
            )
            found.inspect(
                f"POST shopify {topic} signed",
                answer.status_code,
                content_type(answer),
                answer.content,
                raw.decode()[:300],
            )
        for topic in ("order.created", "order.updated"):
            headers = woo_headers(raw, topic, "dev-woocommerce-secret")
            answer = session.post(
                base_url + "/v1/webhooks/woocommerce", data=raw, headers=headers, timeout=10
            )
            found.inspect(
                f"POST woocommerce {topic} signed",
                answer.status_code,
                content_type(answer),
                answer.content,
                raw.decode()[:300],
            )


async def test_no_generated_request_to_the_gateway_gets_a_server_error_or_a_shapeless_error(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "gateway_port": free_port()}
    )
    base_url = f"http://127.0.0.1:{settings.gateway_port}"
    async with running(create_gateway(settings)):
        async with httpx.AsyncClient(base_url=base_url) as client:
            document = (await client.get("/openapi.json")).json()
        started = time.monotonic()
        found = await asyncio.to_thread(fuzz_gateway, document, base_url)
    report = found.report(time.monotonic() - started)

    assert not found.server_errors, "\n\n".join(found.server_errors[:10]) + "\n" + report
    assert not found.bad_errors, "\n\n".join(found.bad_errors[:10]) + "\n" + report
    assert not found.auth, "\n\n".join(found.auth[:10]) + "\n" + report
    assert found.total() >= 10 * CASES, report
    print(report)
