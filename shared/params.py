"""Query parameters of the HTTP API, checked as the contract checks codes and times."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from shared.events.envelope import Code, Timestamp

_CODE = TypeAdapter[str](Code)
_TIME = TypeAdapter[datetime](Timestamp)
MAX_LIMIT = 1000


class BadParameterError(ValueError):
    """A query parameter is missing or malformed: 400 with the reason."""


def code(params: QueryParams, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise BadParameterError(f"{name} is required")
        return None
    try:
        return _CODE.validate_python(value)
    except ValidationError:
        raise BadParameterError(
            f"{name} must be 1 to 64 printable characters without blanks at either end"
        ) from None


def required_code(params: QueryParams, name: str) -> str:
    value = code(params, name)
    assert value is not None
    return value


def timestamp(params: QueryParams, name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return _TIME.validate_python(value)
    except ValidationError:
        raise BadParameterError(f"{name} must be an RFC 3339 time with an offset") from None


def integer(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameterError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise BadParameterError(f"{name} must be between {low} and {high}")
    return number


def flag(params: QueryParams, name: str) -> bool:
    value = params.get(name)
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise BadParameterError(f"{name} must be true or false")
