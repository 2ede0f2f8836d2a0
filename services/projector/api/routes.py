"""The stock endpoints of the HTTP API: levels, totals, history, stock as of a time, listings."""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared import params
from shared.events.ledger import dumps, entry_message
from shared.http import answers_errors, error
from shared.levels import STATES
from shared.params import BadParameterError

from ..adapters.consumer import level_message
from ..adapters.store import ReadModel


def stock_routes(model: ReadModel) -> list[Route]:
    @answers_errors
    async def stock(request: Request) -> Response:
        q = request.query_params
        sku = params.required_code(q, "sku")
        location = params.code(q, "location", required=False)
        as_of = params.timestamp(q, "as_of")
        if as_of is not None and location is None:
            raise BadParameterError("as_of needs a location")
        if location is None:
            rows = await model.levels_of_sku(sku)
            if not rows:
                return error(404, "unknown_sku", f"no stock has ever been recorded for {sku!r}")
            levels = [level_message(r) for r in rows]
            total = {s: sum(level[s] for level in levels) for s in (*STATES, "available")}
            return JSONResponse({"sku": sku, "locations": levels, "total": total})
        if as_of is not None:
            sums = await model.level_as_of(sku, location, as_of)
            if sums is None or not sums["known"]:
                return error(404, "unknown_item", f"nothing recorded for {sku!r} at {location!r}")
            level: dict[str, Any] = {"sku": sku, "location": location}
            level.update({s: int(sums[s]) for s in STATES})
            level["available"] = (
                level["on_hand"] - level["committed"] - level["damaged"] - level["quality_control"]
            )
            level["as_of"] = q["as_of"]
            level["entries"] = sums["entries"]
            return JSONResponse(level)
        row = await model.level(sku, location)
        if row is None:
            return error(404, "unknown_item", f"nothing recorded for {sku!r} at {location!r}")
        return JSONResponse(level_message(row))

    @answers_errors
    async def ledger(request: Request) -> Response:
        q = request.query_params
        sku, location = params.required_code(q, "sku"), params.required_code(q, "location")
        limit = params.integer(q, "limit", 100, 1, params.MAX_LIMIT)
        after = params.integer(q, "after", 0, 0, 2**63 - 1)
        rows = await model.history(sku, location, after, limit)
        entries = [entry_message(r) for r in rows]
        next_after = entries[-1]["position"] if len(entries) == limit else None
        page = {"sku": sku, "location": location, "entries": entries, "next_after": next_after}
        return Response(dumps(page), media_type="application/json")

    @answers_errors
    async def location_stock(request: Request) -> Response:
        q = request.query_params
        location = params.required_code(q, "location")
        limit = params.integer(q, "limit", 100, 1, params.MAX_LIMIT)
        after = params.code(q, "after", required=False) or ""
        rows = await model.at_location(
            location,
            after,
            limit,
            params.flag(q, "oversold"),
            params.flag(q, "below_reorder_point"),
        )
        items = [_listed(r) for r in rows]
        next_after = items[-1]["sku"] if len(items) == limit else None
        return JSONResponse({"location": location, "items": items, "next_after": next_after})

    return [
        Route("/v1/stock", stock),
        Route("/v1/stock/ledger", ledger),
        Route("/v1/locations/stock", location_stock),
    ]


def _listed(row: asyncpg.Record) -> dict[str, Any]:
    item = level_message(row)
    reorder_point = row["reorder_point"]
    item["reorder_point"] = float(reorder_point) if reorder_point is not None else None
    item["oversold"] = row["available"] < 0
    item["below_reorder_point"] = (
        reorder_point is not None and row["available"] + row["incoming"] <= reorder_point
    )
    return item
