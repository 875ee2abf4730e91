"""Rate limits: named policies over GCRA buckets, in Redis when configured, else in this process.

GCRA (the generic cell rate algorithm) keeps one number per bucket, the moment it will be full
again: a policy of N per period admits a burst of N, then one every period/N, and says exactly
how long a refused caller must wait. With TROIKA_REDIS_URL every instance shares the buckets (a
Lua script on Redis's clock); when Redis fails, the process falls back to its own buckets for a
while rather than letting everything through. Keys are digests: no address, phone or key is
stored as is.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import DomainError

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("troika.ratelimit")
_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_EPSILON = 1e-6
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?|second|minute|hour|day)\s*$")


class RateLimited(DomainError):
    code = "RATE_LIMITED"


def rate_limited(wait: float) -> RateLimited:
    """The error a refused caller gets, saying when to come back (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(wait))
    return RateLimited(f"too many requests; try again in {seconds} s", retryAfterSeconds=seconds)


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` per `period` seconds: a burst of `limit`, then one every period/limit."""

    limit: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """'600/minute', '10/hour', '5/30' (seconds); 'off' (or a limit of 0) means none."""
        if text.strip().lower() in ("off", "none", ""):
            return None
        match = _RATE.match(text.lower())
        if match is None:
            raise ValueError(f"{text!r} is not a rate: write N/second|minute|hour|day, N/<seconds> or off")
        limit, per = int(match.group(1)), match.group(2)
        period = _UNITS[per] if per in _UNITS else float(per)
        if period <= 0:
            raise ValueError(f"{text!r}: the period must be positive")
        return None if limit == 0 else cls(limit, period)


class Limiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: float, cost: int = 1) -> float | None:
        """Take `cost` from the bucket of `limit` per `window` seconds: None, or the seconds to wait."""

    async def close(self) -> None: ...


class MemoryLimiter:
    """Buckets of this process (limits then hold per instance)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.full_at: dict[str, float] = {}  # the GCRA's "theoretical arrival time" of each bucket

    async def hit(self, key: str, *, limit: int, window: float, cost: int = 1) -> float | None:
        if cost > limit:
            return window
        now = self.clock()
        start = max(self.full_at.get(key, now), now)
        after = start + window / limit * cost
        wait = after - window - now
        if wait > _EPSILON:  # (floating point: a full bucket must not refuse by a rounding error)
            return wait
        self.full_at[key] = after
        if len(self.full_at) > self.max_keys:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        live = {k: t for k, t in self.full_at.items() if t > now}
        if len(live) > self.max_keys // 2:  # still crowded: forget the oldest half
            live = dict(list(live.items())[len(live) // 2 :])
        self.full_at = live

    async def close(self) -> None:
        return None


# KEYS[1] the bucket; ARGV: milliseconds per unit, the window in milliseconds, the cost.
# Answers 0 when admitted, else the milliseconds to wait. Redis's clock serves every instance.
_GCRA = """
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local start = tonumber(redis.call('GET', KEYS[1]))
if not start or start < now then start = now end
local after = start + interval * cost
local wait = after - window - now
if wait > 0.001 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(after), 'PX', math.ceil(after - now) + 1)
return 0
"""


class RedisLimiter:
    """Buckets in Redis, shared by every instance; this process's own while Redis fails."""

    def __init__(self, url: str, *, prefix: str = "troika:rl:", pause_seconds: float = 5.0) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.redis.register_script(_GCRA)
        self.prefix = prefix
        self.pause_seconds = pause_seconds
        self.fallback = MemoryLimiter()
        self.paused_until = 0.0

    async def hit(self, key: str, *, limit: int, window: float, cost: int = 1) -> float | None:
        if cost > limit:
            return window
        if time.monotonic() >= self.paused_until:
            try:
                args = [window * 1000 / limit, window * 1000, cost]
                waited = int(await self.script(keys=[self.prefix + key], args=args))
            except (RedisError, OSError, TimeoutError) as exc:
                self.paused_until = time.monotonic() + self.pause_seconds
                log.warning("rate limits: Redis failed (%s); this process counts alone for a while", exc)
            else:
                return waited / 1000 if waited > 0 else None
        return await self.fallback.hit(key, limit=limit, window=window, cost=cost)

    async def close(self) -> None:
        await self.redis.aclose()


def address_key(address: str) -> str:
    return f"address:{address}"


def principal_key(actor: str) -> str:
    """A caller by `Principal.actor` (a key's id, or the signed-in user's)."""
    return f"principal:{actor}"


def bucket(policy: str, key: str) -> str:
    """A bucket's name: the policy, and a digest of the key (no address, phone or key in clear)."""
    return f"{policy}:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class RateLimits:
    """The policies of TROIKA_RATE_LIMIT_*: `address` and `principal` for every request, `login` and
    `sms` for the mutations that sign in or send a code (graphql_schema/ratelimits.py); a resolver
    may apply any of them to its own keys (`RequestContext.rate_limit`)."""

    def __init__(self, settings: Settings, *, limiter: Limiter | None = None) -> None:
        self.enabled = settings.rate_limit_enabled
        self.policies: dict[str, Rate | None] = {
            "address": Rate.parse(settings.rate_limit_address),
            "principal": Rate.parse(settings.rate_limit_principal),
            "login": Rate.parse(settings.rate_limit_login),
            "sms": Rate.parse(settings.rate_limit_sms),
        }
        self.limiter: Limiter = limiter or (
            RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
        )

    async def check(self, policy: str, keys: Iterable[str], *, cost: int = 1) -> float | None:
        """Count one request (of `cost`) against each key's bucket: None, or the seconds to wait."""
        if policy not in self.policies:
            raise KeyError(f"no rate-limit policy {policy!r}")
        rate = self.policies[policy]
        if not self.enabled or rate is None:
            return None
        for key in keys:
            wait = await self.limiter.hit(
                bucket(policy, key), limit=rate.limit, window=rate.period, cost=cost
            )
            if wait is not None:
                log.info("rate limit %s: refused for %.1f s", policy, wait)
                return wait
        return None

    async def close(self) -> None:
        await self.limiter.close()
