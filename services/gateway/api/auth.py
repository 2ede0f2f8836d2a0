"""The bearer token of the gateway's write endpoints (the API's token setting)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from shared.http import error


def refusal(request: Request, token: str) -> Response | None:
    """None when the bearer token is right; else 401 (none given) or 403 (wrong), the token
    compared in constant time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return error(401, "unauthorized", "a bearer token is required (Authorization: Bearer …)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return error(403, "forbidden", "the token is not valid for this operation")
    return None
