"""The replenishment endpoints of the HTTP API: policies (read and set) and requests."""

from __future__ import annotations

import hmac
import math
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared import params
from shared.http import answers_errors, body_within, error
from shared.settings import Settings

from .adapters.store import forecast_of
from .planning import PLAN_COLUMNS, plan_of
from .policy import Policy, figures_for

MAX_BODY = 64 * 1024
STATUSES = {"open": ("open", "confirmed"), "closed": ("received", "cancelled")}


def _authorized(request: Request, token: str) -> Response | None:
    """None when the bearer token is right; else 401 (none given) or 403 (wrong), the token
    compared in constant time."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return error(401, "unauthorized", "a bearer token is required (Authorization: Bearer …)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return error(403, "forbidden", "the token is not valid for this operation")
    return None


def replenishment_routes(pool: asyncpg.Pool, settings: Settings, default: Policy) -> list[Route]:
    token = settings.api_token.get_secret_value()

    @answers_errors
    async def get_policy(request: Request) -> Response:
        q = request.query_params
        sku, location = params.required_code(q, "sku"), params.required_code(q, "location")
        row = await pool.fetchrow(
            "SELECT p.policy, f.method, f.daily_demand, f.demand_sd, f.holdout_mae,"
            f" f.history_days, f.demand_size, f.computed_at, {PLAN_COLUMNS},"
            " pr.price, pr.planned_for AS pass_for, pr.expected_fill AS pass_fill"
            " FROM (SELECT $1::text AS sku, $2::text AS location) k"
            " LEFT JOIN replenishment_policies p USING (sku, location)"
            " LEFT JOIN replenishment_forecasts f USING (sku, location)"
            " LEFT JOIN replenishment_plans pl USING (sku, location)"
            " LEFT JOIN replenishment_planner pr ON true",
            sku,
            location,
        )
        assert row is not None
        explicit = row["policy"] is not None
        policy = Policy.model_validate_json(row["policy"]) if explicit else default
        demand = forecast_of(row)
        plan = plan_of(row)
        figures = figures_for(policy, demand, plan)
        body: dict[str, Any] = {
            "sku": sku,
            "location": location,
            "source": "set" if explicit else "default",
            "policy": policy.model_dump(),
            "forecast": None,
            "plan": None,
            "figures": None,
        }
        if plan is not None:
            body["plan"] = {
                "reorder_point": plan.reorder_point,
                "order_up_to": plan.order_up_to,
                "expected_line_fill": round(plan.expected_fill, 4),
                "expected_units_on_hand": round(plan.expected_units, 2),
                "lines_per_day": round(plan.lines_per_day, 4),
                "mean_line_size": round(plan.mean_line_size, 2),
                "lead_time_demand_quantiles": plan.ltd_quantiles,
                "planned_for": row["planned_for"].isoformat(),
                "price_lines_per_unit_day": row["price"],
                "all_items_expected_line_fill": row["pass_fill"],
            }
        if demand is not None:
            body["forecast"] = {
                "method": demand.method,
                "daily_demand": demand.daily_demand,
                "demand_sd": demand.demand_sd,
                "holdout_mae": demand.holdout_mae,
                "history_days": demand.history_days,
                "demand_size": demand.demand_size,
                "computed_at": row["computed_at"].isoformat().replace("+00:00", "Z"),
            }
        if figures is not None:
            body["figures"] = {
                "daily_demand": figures.daily_demand,
                "demand_sd": figures.demand_sd,
                "cycle_service_level": figures.cycle_service,
                "safety_stock": figures.safety_stock,
                "reorder_point": math.ceil(figures.reorder_point),
                "order_up_to": math.ceil(figures.order_up_to),
                "expected_line_fill": figures.expected_fill,
                "lead_time_demand_quantiles": figures.ltd_quantiles,
            }
        return JSONResponse(body)

    @answers_errors
    async def put_policy(request: Request) -> Response:
        refused = _authorized(request, token)
        if refused is not None:
            return refused
        q = request.query_params
        sku, location = params.required_code(q, "sku"), params.required_code(q, "location")
        raw = await body_within(request, MAX_BODY)
        if raw is None:
            return error(413, "too_large", f"the body is limited to {MAX_BODY} bytes")
        try:
            policy = Policy.model_validate_json(raw)
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            return error(400, "invalid_policy", reasons)
        await pool.execute(
            "INSERT INTO replenishment_policies (sku, location, policy) VALUES ($1, $2, $3)"
            " ON CONFLICT (sku, location) DO UPDATE SET policy = EXCLUDED.policy,"
            " updated_at = now()",
            sku,
            location,
            policy.model_dump_json(),
        )
        return JSONResponse({"sku": sku, "location": location, "policy": policy.model_dump()})

    async def policies(request: Request) -> Response:
        return await (put_policy if request.method == "PUT" else get_policy)(request)

    @answers_errors
    async def requests(request: Request) -> Response:
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in STATUSES:
            raise params.BadParameterError("status must be open or closed")
        sku = params.code(q, "sku", required=False)
        location = params.code(q, "location", required=False)
        limit = params.integer(q, "limit", 100, 1, params.MAX_LIMIT)
        rows = await pool.fetch(
            "SELECT request_id, sku, location, qty, kind, from_location, status, confirmed_qty,"
            " received_qty, needed_by, requested_at, reason, published_at IS NOT NULL AS published"
            " FROM replenishment_requests WHERE ($1::text[] IS NULL OR status = ANY($1))"
            " AND ($2::text IS NULL OR sku = $2) AND ($3::text IS NULL OR location = $3)"
            " ORDER BY seq DESC LIMIT $4",
            list(STATUSES[status]) if status else None,
            sku,
            location,
            limit,
        )
        return JSONResponse({"requests": [_request(r) for r in rows]})

    return [
        Route("/v1/policies", policies, methods=["GET", "PUT"]),
        Route("/v1/replenishment/requests", requests),
    ]


def _request(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["reason"] = orjson.loads(item["reason"])
    for at in ("needed_by", "requested_at"):
        item[at] = item[at].isoformat().replace("+00:00", "Z")
    return item
