"""The input envelope and the field types all input events share, validated per the contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_QTY = 1_000_000_000  # far above any real movement, far below bigint overflow in sums

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2011-07-01T08:26:00Z")
    return value


def _within_range(value: datetime) -> datetime:
    """Business times: years 1900 to 2999 in UTC, so that every accepted time converts to UTC,
    fits PostgreSQL's timestamptz, and is accepted again when read back."""
    if not 1899 <= value.year <= 3000:  # converting at the ends of the datetime range overflows
        raise ValueError("must be between the years 1900 and 2999")
    utc = value.astimezone(UTC)
    if not 1900 <= utc.year <= 2999:
        raise ValueError("must be between the years 1900 and 2999")
    return utc


# Printable characters with no blank at either end; spaces are allowed inside. Checked by
# pydantic-core's regex engine, not by Python code, because it runs for every code of every event.
_CODE_PATTERN = r"^[^\p{C}\p{Z}](?:(?:[^\p{C}\p{Z}]| )*[^\p{C}\p{Z}])?$"


Code = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE_PATTERN)]
"""A SKU or location code: 1 to 64 printable characters, case-sensitive, no outer blanks."""

Sku = Annotated[Code, Field(description="Stock keeping unit, case-sensitive.")]
Location = Annotated[Code, Field(description="Location code, case-sensitive.")]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=_CODE_PATTERN)]
"""Order, line, request and transfer ids: 1 to 128 printable characters."""

Qty = Annotated[int, Field(strict=True, gt=0, le=MAX_QTY, description="Units, > 0.")]
SignedQty = Annotated[int, Field(strict=True, ge=-MAX_QTY, le=MAX_QTY)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_within_range)]
"""An RFC 3339 time with an offset; naive times and numbers are refused."""


class Data(BaseModel):
    """Base of every event's ``data``: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(BaseModel):
    """Fields every input event carries; ``type`` selects the model of ``data``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(description="Assigned by the producer; the idempotency key.")
    schema_version: int = Field(strict=True, ge=1, le=1, description="Always 1 in this version.")
    occurred_at: Timestamp = Field(description="When it happened in the world (RFC 3339).")
    source: str | None = Field(default=None, max_length=256, description="Who sent it.")
