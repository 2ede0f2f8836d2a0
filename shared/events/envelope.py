"""The input envelope and the field types all input events share, validated per the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, WithJsonSchema
from pydantic_core import core_schema

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_QTY = 1_000_000_000  # far above any real movement, far below bigint overflow in sums

# The spelling RFC 3339 allows; pydantic's own datetime parser also takes "1309508760", minutes
# without seconds, "+0100" and more. Checked with pydantic-core's regex engine, as is the year
# range below: both run for every event, and a Python validator costs a fifth of a decode.
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339_ERROR = "must be an RFC 3339 time with an offset, e.g. 2011-07-01T08:26:00Z"
# Business times: years 1900 to 2999 in UTC, so that every accepted time converts to UTC, fits
# PostgreSQL's timestamptz, and is accepted again when read back.
_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


class _Rfc3339:
    """An aware datetime read from an RFC 3339 string: the spelling, then the value and range."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        spelling = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=_RFC3339),
            "rfc3339",
            custom_error_message=_RFC3339_ERROR,
        )
        value = core_schema.datetime_schema(tz_constraint="aware", ge=_EARLIEST, lt=_LATEST)
        return core_schema.chain_schema([spelling, value])


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
Timestamp = Annotated[datetime, _Rfc3339, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An RFC 3339 time with an offset, years 1900 to 2999 in UTC; naive times and numbers are
refused. The offset is kept as sent."""


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
