"""Which failures the services wait out and try again, and which are the work's own."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

from shared.runner import retry, temporary

TEMPORARY = [
    ConnectionResetError("reset"),
    TimeoutError(),
    OSError("no route to host"),
    asyncpg.exceptions.SerializationError("could not serialize"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection"),
    asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    KafkaConnectionError(),
    KafkaTimeoutError(),
    NotLeaderForPartitionError(),
]
THE_WORK_S_OWN = [
    ValueError("a rule failed"),
    KeyError("sku"),
    asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
    asyncpg.exceptions.NumericValueOutOfRangeError("bigint out of range"),
    asyncpg.exceptions.CheckViolationError("violates check constraint"),
    asyncpg.exceptions.DataError("invalid input for query argument $1 (connection)"),
    MessageSizeTooLargeError(),
    TopicAuthorizationFailedError(),
]


@pytest.mark.parametrize("exc", TEMPORARY, ids=lambda e: type(e).__name__)
def test_failures_that_pass_are_temporary(exc: Exception) -> None:
    assert temporary(exc)


@pytest.mark.parametrize("exc", THE_WORK_S_OWN, ids=lambda e: type(e).__name__)
def test_failures_of_the_work_itself_are_not(exc: Exception) -> None:
    assert not temporary(exc)


async def test_retry_waits_out_temporary_failures_and_raises_the_others_at_once() -> None:
    calls: list[str] = []

    async def flaky(then: Exception) -> str:
        calls.append("call")
        if len(calls) == 1:
            raise ConnectionResetError("reset")
        raise then

    with pytest.raises(ValueError, match="poison"):
        await retry("work", asyncio.Event(), flaky, ValueError("poison"), only=temporary)
    assert len(calls) == 2
