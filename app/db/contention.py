"""Transactions the database aborted for contention are run again, whole, a bounded number of times."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from app.errors import DomainError

T = TypeVar("T")
log = logging.getLogger("troika.db")

SQLITE_BUSY = "SQLite database is locked"
# PostgreSQL aborts one transaction of a deadlock (40P01) or a serialization failure (40001).
_RETRYABLE = {"40P01": "deadlock detected", "40001": "serialization failure"}


class WriteContention(DomainError):
    """The change lost to concurrent writers every time it was tried; sending it again is safe."""

    code = "WRITE_CONTENTION"


def contention(exc: DBAPIError) -> str | None:
    """Why the database aborted a transaction that may simply be run again; None for other errors."""
    state = getattr(exc.orig, "sqlstate", None)
    if state in _RETRYABLE:
        return f"PostgreSQL {_RETRYABLE[state]}, SQLSTATE {state}"
    if getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_BUSY":
        return SQLITE_BUSY
    return None


async def retrying(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    what: str,
    outcome: str,
    error: type[DomainError] = WriteContention,
) -> T:
    """Run one transaction, again from the start when the database aborted it for contention."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as exc:
            cause = contention(exc)
            if cause is None:
                raise
            if attempt >= attempts or cause == SQLITE_BUSY:  # SQLite already waited busy_timeout
                raise error(
                    f"{what} collided with concurrent writes ({cause}) on {attempt} attempt(s); "
                    f"{outcome}; send it again",
                    attempts=attempt,
                    cause=cause,
                ) from exc
            log.warning("%s: %s on attempt %d of %d, retrying", what, cause, attempt, attempts)
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")
