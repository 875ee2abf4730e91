"""Fixed-window counters for abuse limits: in this process, or in Redis so instances share them."""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

import redis.asyncio as aioredis

from app.errors import DomainError


class RateLimited(DomainError):
    code = "RATE_LIMITED"


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        """Count one event; the seconds to wait when it is over `limit` per `window` seconds, else None."""

    async def count(self, key: str, *, window: int) -> int:
        """Events counted in `key`'s current window."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Counts in this process: limits multiply by the number of instances (use Redis for several)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _current(self, key: str, window: int, now: float) -> tuple[float, int]:
        start, n = self._windows.get(key, (now, 0))
        if now - start >= window:
            start, n = now, 0
        return start, n

    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 3600}
            start, n = self._current(key, window, now)
            self._windows[key] = (start, n + 1)
        return None if n + 1 <= limit else max(window - (now - start), 1.0)

    async def count(self, key: str, *, window: int) -> int:
        with self._lock:
            return self._current(key, window, time.monotonic())[1]

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    """INCR + EXPIRE per window: every instance counts in one place."""

    def __init__(self, url: str, prefix: str = "troika:rl:") -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        name = self.prefix + key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window, nx=True)
            pipe.ttl(name)
            n, _, ttl = await pipe.execute()
        return None if int(n) <= limit else float(max(int(ttl), 1))

    async def count(self, key: str, *, window: int) -> int:
        value = await self.redis.get(self.prefix + key)
        return int(value or 0)

    async def close(self) -> None:
        await self.redis.aclose()


def limiter_for(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()


async def enforce(limiter: RateLimiter, key: str, *, limit: int, window: int, what: str) -> None:
    """Count one `what`, refusing it with RATE_LIMITED (and when to retry) once over the limit."""
    wait = await limiter.hit(key, limit=limit, window=window)
    if wait is not None:
        seconds = math.ceil(wait)
        raise RateLimited(f"too many {what}; try again in {seconds} s", retryAfterSeconds=seconds)
