"""Starting a service: a database or broker away as it starts is waited for, up to a limit."""

from __future__ import annotations

import asyncio
import ssl
import time

import asyncpg
import pytest

from shared.runner import run_patiently


class Starting:
    """A service whose first runs fail with ``errors`` in turn, then runs."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.errors:
            raise self.errors.pop(0)

    def stop(self) -> None:
        pass


async def no_wait(seconds: float) -> None:
    waits.append(seconds)


waits: list[float] = []


@pytest.fixture(autouse=True)
def _clear_waits() -> None:
    waits.clear()


async def test_a_database_away_as_the_service_starts_is_waited_for() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    shutting_down = asyncpg.CannotConnectNowError("the database system is shutting down")
    service = Starting(refused, shutting_down, ExceptionGroup("task group", [refused]))
    await run_patiently(service, time.monotonic() + 60, lambda: False, no_wait)
    assert service.runs == 4
    assert waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        asyncpg.InvalidPasswordError("password authentication failed"),
        ssl.SSLCertVerificationError("certificate verify failed"),
    ],
    ids=["bug", "password", "certificate"],
)
async def test_an_error_that_waiting_cannot_mend_is_raised_at_once(error: Exception) -> None:
    service = Starting(error)
    with pytest.raises(type(error)):
        await run_patiently(service, time.monotonic() + 60, lambda: False, no_wait)
    assert service.runs == 1
    assert waits == []


async def test_a_database_away_for_longer_than_the_patience_fails_the_start() -> None:
    service = Starting(*(OSError("unreachable") for _ in range(10)))
    started = time.monotonic()
    with pytest.raises(OSError, match="unreachable"):
        await run_patiently(service, started + 1.6, lambda: False, asyncio.sleep)
    # run at 0, 0.5 and 1.5 s; one more wait (2 s) would overrun the patience
    assert service.runs == 3
    assert 1.4 <= time.monotonic() - started < 2.0


async def test_a_service_asked_to_stop_is_not_started_again() -> None:
    service = Starting(OSError("unreachable"))
    with pytest.raises(OSError, match="unreachable"):
        await run_patiently(service, time.monotonic() + 60, lambda: True, asyncio.sleep)
    assert service.runs == 1
