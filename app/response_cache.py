"""Per-user response cache: a repeated `user(id)`/`me` query is answered with one version check.

An entry is the exact HTTP response to one request body from one kind of caller, stored with the
data version of every user the response showed (read before their data, see
`RequestContext.depends_on`). Every change to what a user's view shows bumps that user's version
in the change's own transaction (`app/services/changes.py`), so a hit is served only after one
statement confirms that none of those versions moved: correct across processes and instances,
with no broadcast to miss. Only queries whose root fields are all `user(id:)` or `me` are stored
(see `graphql_schema/extensions.py`), never a response with errors. The entries live in the
process, or in one store the workers of `troika serve --workers N` share (app/response_store.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.authenticate import Authenticator, AuthResult
from app.auth.principal import Principal
from app.response_store import Entry, Key, MemoryStore, Store

SCOPE_AUTH = "troika.auth"
SCOPE_CONTEXT = "troika.context"
MAX_BODY = 16 * 1024
HIT = [(b"x-troika-cache", b"hit")]  # like a CDN's X-Cache: tells clients and benchmarks what they got


class VersionsOf(Protocol):
    """Reads the current data version of active users (absorbed ones are left out)."""

    async def __call__(self, user_ids: Iterable[int]) -> dict[int, int]: ...

    async def close(self) -> None: ...


def visibility(principal: Principal) -> tuple[object, ...]:
    """What, besides the users' data, decides an answer: the caller's kind, channel, roles, self
    (the roles sorted: a key must read the same in every worker)."""
    return (principal.kind, principal.channel, tuple(sorted(principal.roles)), principal.user_id)


class ResponseCache:
    """Bounded by bytes; entries also expire after `ttl` seconds (or earlier, when the answer says)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        ttl: float,
        versions_of: VersionsOf,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.ttl = ttl
        self.versions_of = versions_of
        # Seconds of wall time: a shared store's expiry reads the same in every worker; tests
        # replace the clock to move time without waiting.
        self.clock = clock
        self.store = store or MemoryStore(max_bytes, timer=lambda: self.clock())
        self.hits = 0
        self.misses = 0

    async def get(self, key: Key) -> Entry | None:
        """The entry for `key` if every user it showed is still at the version it was built from."""
        entry = self.store.get(key, self.clock())
        if entry is not None:
            current = await self.versions_of(user_id for user_id, _ in entry.versions)
            if all(current.get(user_id) == version for user_id, version in entry.versions):
                self.hits += 1
                return entry
            self.store.discard(key)
        self.misses += 1
        return None

    def put(self, key: Key, entry: Entry) -> None:
        self.store.put(key, entry, self.clock())

    async def close(self) -> None:
        self.store.close()
        await self.versions_of.close()


class ResponseCacheMiddleware:
    """Pure ASGI around POST /graphql: serve a hit, or run the app and keep a storable answer."""

    def __init__(
        self, app: ASGIApp, *, cache: ResponseCache, authenticate: Authenticator, path: str = "/graphql"
    ) -> None:
        self.app = app
        self.cache = cache
        self.authenticate = authenticate
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        replay = _replayer(body, more, receive)
        headers = dict(scope["headers"])
        auth = scope.get(SCOPE_AUTH)  # the rate limiter's, when it ran
        if not isinstance(auth, AuthResult):
            auth = await self.authenticate(_text(headers.get(b"authorization")))
            scope[SCOPE_AUTH] = auth  # the context getter reuses it
        if more or auth.principal is None:
            await self.app(scope, replay, send)
            return
        key: Key = (
            visibility(auth.principal),
            headers.get(b"accept"),
            headers.get(b"content-type"),
            body,
        )
        entry = await self.cache.get(key)
        if entry is not None:
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers + HIT})
            await send({"type": "http.response.body", "body": entry.body})
            return
        await self._run_and_keep(scope, replay, send, key, auth)

    async def _run_and_keep(
        self, scope: Scope, receive: Receive, send: Send, key: Key, auth: AuthResult
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None:
                    # Kept before the last bytes leave: whoever reads next, on any worker, finds it.
                    self._keep(scope, start, b"".join(chunks), key, auth)
            await send(message)

        await self.app(scope, receive, capture)

    def _keep(self, scope: Scope, start: Message, body: bytes, key: Key, auth: AuthResult) -> None:
        ctx = scope.get(SCOPE_CONTEXT)
        versions = getattr(ctx, "versions", None)
        if start["status"] != 200 or not versions or auth.principal is None:
            return
        ttl = self.cache.ttl
        valid_until = getattr(ctx, "valid_until", None)
        if valid_until is not None:
            ttl = min(ttl, valid_until.timestamp() - time.time())
        if ttl <= 0:
            return
        self.cache.put(
            key,
            Entry(
                headers=list(start.get("headers", [])),
                body=body,
                versions=tuple(sorted(versions.items())),
                expires_at=self.cache.clock() + ttl,
            ),
        )


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """Up to MAX_BODY bytes of the request; `more` when the body is longer (then never cached)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replayer(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that hands the app the bytes already read, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
