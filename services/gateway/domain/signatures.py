"""Webhook signatures, both ways. Pure: no I/O.

Inbound (Shopify, WooCommerce): base64 of the HMAC-SHA256 of the raw body, compared in constant
time before anything parses the body. Outbound: the Standard Webhooks scheme, signed with the
spec's reference library (``standardwebhooks``): ``v1,`` + base64 HMAC-SHA256 of
``id.timestamp.body`` with the endpoint's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SECRET_BYTES = (24, 64)  # the spec's range of secret lengths, in bytes


def body_signed(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the base64 HMAC-SHA256 of ``body`` under ``secret``."""
    if not header or not secret:
        return False
    expected = base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256))
    return hmac.compare_digest(expected, header.strip().encode())


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a Standard Webhooks secret (``whsec_`` + base64 of 24 to 64
    bytes); None when it is."""
    if not secret.startswith(SECRET_PREFIX):
        return "secret must start with whsec_ (Standard Webhooks)"
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return "secret must be whsec_ followed by base64"
    if not SECRET_BYTES[0] <= len(raw) <= SECRET_BYTES[1]:
        return f"secret must hold {SECRET_BYTES[0]} to {SECRET_BYTES[1]} bytes, not {len(raw)}"
    return None


def standard_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt to send ``body``."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
        "content-type": "application/json",
    }
