"""The doorbell: after a commit that appended to the outbox, wake every instance's change feed.

Redis pub/sub carries only "the outbox has reached cursor N"; every instance reads the rows
themselves from the outbox, after the cursor it has delivered. So a lost message (Redis down or
restarting, a subscriber reconnecting) costs latency, never a change: the feed also polls the
outbox every `poll_seconds`, and catches up from its own cursor when woken again. Streams would
add a second copy of the outbox to keep consistent; pub/sub is enough because the outbox is the
record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.background import spawn

log = logging.getLogger("troika.sync")

CHANNEL = "troika:changes"


class Doorbell:
    """In-process always; through Redis too when a URL is given."""

    def __init__(self, redis_url: str | None = None, *, channel: str = CHANNEL) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.heard = 0  # the newest cursor any instance announced
        self.wake = asyncio.Event()
        self._to_publish = 0
        self._publish_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.redis_ok = False
        self._last_warning = 0.0

    def ring(self, cursor: int) -> None:
        """Called after a local commit (never blocks): wake the local feed, publish in the background."""
        self._heard(cursor)
        if self.redis_url is not None and cursor > self._to_publish:
            self._to_publish = cursor
            self._publish_wanted.set()
            self.start()  # an instance with no subscribers still announces its commits

    def _heard(self, cursor: int) -> None:
        if cursor > self.heard:
            self.heard = cursor
        self.wake.set()

    def start(self) -> None:
        """Start the Redis publisher and listener (nothing to start without Redis)."""
        if self.redis_url is not None and not self._tasks:
            self._tasks = [
                spawn(self._publish(), name="doorbell-publish"),
                spawn(self._listen(), name="doorbell-listen"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _publish(self) -> None:
        """Announce the newest committed cursor; retried until Redis takes it."""
        assert self.redis_url is not None
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while True:
                await self._publish_wanted.wait()
                self._publish_wanted.clear()
                cursor = self._to_publish
                try:
                    await client.publish(self.channel, str(cursor))
                except (RedisError, OSError) as exc:
                    self._warn(f"cannot publish to Redis ({exc}); retrying, other instances poll meanwhile")
                    self._publish_wanted.set()
                    await asyncio.sleep(0.5)
        finally:
            await client.aclose()

    async def _listen(self) -> None:
        """Hear other instances' announcements; reconnect with backoff for as long as it takes."""
        assert self.redis_url is not None
        delay = 0.1
        while True:
            # No retries inside redis-py: its pub/sub would reconnect and resubscribe silently, and
            # what was announced meanwhile would be missed with no catch-up. A lost connection
            # raises here instead, and the next round catches up from the outbox.
            client = aioredis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.redis_ok, delay = True, 0.1
                    self.wake.set()  # catch up on whatever was announced while we were away
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._heard(int(message["data"]))
            except (RedisError, OSError, ValueError) as exc:
                self.redis_ok = False
                self._warn(f"Redis listener lost ({exc}); reconnecting, polling the outbox meanwhile")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await client.aclose()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning(message)
