"""What the CLI's commands share: running async work against the configured databases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.db.engine import Database, make_database
from app.settings import Settings

T = TypeVar("T")


def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on a fresh event loop with the databases open, and close them after."""

    async def run() -> T:
        db = make_database(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())
