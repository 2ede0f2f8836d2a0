"""Receivers of our outbound webhooks: PUT/GET/DELETE /v1/webhooks/endpoints?name=N (bearer
token), and GET /v1/webhooks/deliveries, what was sent to them and how it went."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared import params
from shared.events.envelope import Location
from shared.http import answers_errors, body_within, error
from shared.params import BadParameterError
from shared.settings import Settings

from ..adapters.store import DELIVERY_STATUSES, GatewayStore
from ..domain.deliveries import DEFAULT_TYPES, TYPES, Endpoint
from ..domain.signatures import new_secret, secret_problem
from .auth import refusal

MAX_BODY = 64 * 1024
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class EndpointBody(BaseModel):
    """The body of PUT /v1/webhooks/endpoints."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(default=None, max_length=200)
    locations: list[Location] | None = Field(default=None, max_length=10_000)
    types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES), min_length=1)


def _name(request: Request) -> str:
    name = request.query_params.get("name", "")
    if not re.match(NAME_PATTERN, name):
        raise BadParameterError("name: 1 to 64 letters, digits, '.', '_' or '-' is required")
    return name


def _listed(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "locations": sorted(endpoint.locations) if endpoint.locations is not None else None,
        "types": sorted(endpoint.types),
    }


def endpoint_routes(settings: Settings, store: GatewayStore) -> list[Route]:
    token = settings.api_token.get_secret_value()

    @answers_errors
    async def endpoints(request: Request) -> Response:
        if (refused := refusal(request, token)) is not None:
            return refused
        if request.method == "GET":
            listed = [_listed(e) for e in await store.endpoints()]
            if "name" in request.query_params:
                name = _name(request)
                listed = [e for e in listed if e["name"] == name]
                if not listed:
                    return error(404, "unknown_endpoint", f"no endpoint named {name!r}")
                return JSONResponse(listed[0])
            return JSONResponse({"endpoints": listed})
        name = _name(request)
        if request.method == "DELETE":
            if not await store.delete_endpoint(name):
                return error(404, "unknown_endpoint", f"no endpoint named {name!r}")
            return JSONResponse({"deleted": name})
        body = await body_within(request, MAX_BODY)
        if body is None:
            return error(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
        try:
            given = EndpointBody.model_validate(orjson.loads(body))
        except orjson.JSONDecodeError:
            return error(400, "invalid_json", "the body is not JSON")
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return error(400, "bad_parameter", f"{where}: {first['msg']}")
        url = urlsplit(given.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            return error(400, "bad_parameter", "url: an http or https URL is required")
        unknown = set(given.types) - set(TYPES)
        if unknown:
            return error(400, "bad_parameter", f"types: unknown {sorted(unknown)}; use {TYPES}")
        secret = given.secret or new_secret()
        if (problem := secret_problem(secret)) is not None:
            return error(400, "bad_parameter", problem)
        locations = frozenset(given.locations) if given.locations is not None else None
        endpoint = Endpoint(name, given.url, secret, locations, frozenset(given.types))
        created = await store.put_endpoint(endpoint)
        answer = _listed(endpoint)
        if given.secret is None:
            answer["secret"] = secret  # generated: shown this once
        return JSONResponse(answer, status_code=201 if created else 200)

    @answers_errors
    async def deliveries(request: Request) -> Response:
        if (refused := refusal(request, token)) is not None:
            return refused
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in DELIVERY_STATUSES:
            raise BadParameterError(f"status: one of {', '.join(DELIVERY_STATUSES)}")
        endpoint = _name(request) if "name" in q else None
        limit = params.integer(q, "limit", 100, 1, params.MAX_LIMIT)
        after = params.integer(q, "after", 0, 0, 2**63 - 1)
        rows = await store.deliveries(status, endpoint, after, limit)
        next_after = rows[-1]["seq"] if len(rows) == limit else None
        return JSONResponse({"deliveries": rows, "next_after": next_after})

    return [
        Route("/v1/webhooks/endpoints", endpoints, methods=["GET", "PUT", "DELETE"]),
        Route("/v1/webhooks/deliveries", deliveries, methods=["GET"]),
    ]
