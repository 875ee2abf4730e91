"""`/readyz`: can this instance serve? The hub database, each channel-store database and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import Database
from app.settings import Settings

Check = Callable[[], Awaitable[object]]


def _database(engine: AsyncEngine) -> Check:
    async def check() -> object:
        async with engine.connect() as conn:
            return await conn.execute(text("SELECT 1"))

    return check


class Readiness:
    """Runs every check at once, each bounded by TROIKA_READINESS_TIMEOUT_SECONDS."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.timeout = settings.readiness_timeout_seconds
        self.checks: dict[str, Check] = {"database": _database(db.write_engine)}
        for store in db.stores:
            if not store.shares_hub:
                name = "store:" + "+".join(c.value.lower() for c in store.channels)
                self.checks[name] = _database(store.engines.write_engine)
        self.redis: Redis | None = None
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
            )
            self.checks["redis"] = self.redis.ping

    async def _one(self, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return "timeout"
        except Exception as exc:  # any failure means not ready; its kind says which  # noqa: BLE001
            return f"failed: {type(exc).__name__}"
        return "ok"

    async def run(self) -> dict[str, str]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
