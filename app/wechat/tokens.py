"""Where wechatpy keeps access tokens: Redis when configured, so every instance shares one token.

WeChat keeps one access_token per app valid: fetching a new one retires the old one soon after.
Instances that each fetched their own would keep retiring each other's; with Redis they read one
token and fetch under one lock, and whoever waited for the lock takes the token fetched meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from wechatpy.session import SessionStorage
from wechatpy.session.redisstorage import RedisStorage

PREFIX = "troika:wechat"


class MemoryStorage(SessionStorage):  # type: ignore[misc]
    """wechatpy's in-memory storage ignores TTLs; this one lets a token expire."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            value, until = self._data.get(key, (default, None))
            if until is not None and until <= time.monotonic():
                self._data.pop(key, None)
                return default
            return value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is None:
            return
        with self._lock:
            self._data[key] = (value, None if not ttl else time.monotonic() + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class TokenStore:
    """A wechatpy session storage and the lock that serializes token fetches for one app."""

    def __init__(self, redis_url: str | None) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self.storage: SessionStorage = (
            RedisStorage(self._redis, prefix=PREFIX) if self._redis is not None else MemoryStorage()
        )
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def lock(self, appid: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
        """A context manager factory: a Redis lock across instances, else a lock in this process."""
        if self._redis is not None:
            client = self._redis
            return lambda: client.lock(f"{PREFIX}:{appid}:fetch", timeout=30, blocking_timeout=30)
        with self._guard:
            local = self._locks.setdefault(appid, threading.Lock())

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            with local:
                yield

        return held

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
