"""The per-request context every resolver receives."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.authenticate import AuthResult
from app.auth.principal import Principal, PrincipalKind
from app.db.contention import retrying
from app.db.engine import Database
from app.db.shared import SharedReads
from app.domain import UserRecord
from app.errors import Unauthenticated
from app.ingest.dictionary import DataDictionary
from app.integrations import Integrations
from app.observability.tracing import current_trace_id
from app.ratelimit import RateLimits, address_key, principal_key, rate_limited
from app.services.audit import TRACE_ID
from app.services.changes import ON_COMMITTED
from app.settings import Settings
from app.sync.feed import ChangeFeed
from loaders import Loaders

if TYPE_CHECKING:
    from app.jobs.runner import Jobs

T = TypeVar("T")


class RequestContext:
    """Built once per HTTP request (or WebSocket connection); loaders are rebuilt after each
    committed write and for each subscription event."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        auth: AuthResult,
        dictionary: DataDictionary,
        feed: ChangeFeed | None = None,
        integrations: Integrations | None = None,
        client: str | None = None,
        trace_id: str | None = None,
        limits: RateLimits | None = None,
        address: str | None = None,
        transport: str = "http",
        jobs: Jobs | None = None,
        shared_reads: bool = False,
    ) -> None:
        self.db = db
        self.settings = settings
        self.auth = auth
        self.dictionary = dictionary
        self._feed = feed
        self._integrations = integrations
        self.jobs = jobs  # the background job queue (operators' view of failed jobs)
        self.client = client  # the caller's address, for abuse limits on anonymous doors
        # With `shared_reads` (an HTTP request, closed by `close()`), one read connection per
        # database serves all of the request's loaders and lookups.
        self.reads = SharedReads(shared=shared_reads)
        self._retired: list[SharedReads] = []
        self.loaders = Loaders(db, dictionary, settings, self.reads)
        self.connection_params: dict[str, object] | None = None  # graphql-transport-ws init payload
        # Quoted in every error of the response and in the log lines about it.
        self.trace_id = trace_id or new_trace_id()
        # Rate limits: the policies, who asks from where (an HTTP request, or a WebSocket
        # connection's operations), and when a limit refused: the seconds to wait (Retry-After).
        self.limits = limits
        self.address = address
        self.transport = transport
        self.retry_after: float | None = None
        # What a cached copy of this response would depend on (app/response_cache.py): the users
        # read with their data versions (None once anything uncacheable was read), and a time
        # after which the answer changes by itself (a membership expiring).
        self.versions: dict[int, int] | None = {}
        self.valid_until: datetime | None = None
        # A compiled read (graphql_schema/compiled/) audits its reveals only once its answer stands.
        self.held_reveals: list[tuple[int, str]] | None = None
        # The fast lane (app/http/lane.py): the document a compiled plan answered, and whether the
        # lane already tried the plan (the full path's CompiledReads then leaves it to the resolvers).
        self.compiled_document: object | None = None
        self.compiled_tried = False

    def depends_on(self, user: UserRecord | None) -> None:
        """The response shows this user: a cached copy lives only while its version stands."""
        if self.versions is None:
            return
        if user is None or user.version is None:
            self.versions = None
        else:
            self.versions[user.id] = user.version

    def uncacheable(self) -> None:
        """The response depends on more than the users' versions: never serve it from a cache."""
        self.versions = None

    def expires(self, at: datetime) -> None:
        """The response changes by itself at `at` (e.g. a membership ends): cache it no longer."""
        if self.valid_until is None or at < self.valid_until:
            self.valid_until = at

    async def rate_limit(self, policy: str, *keys: str, cost: int = 1) -> None:
        """Count this request under `policy` for the caller's address, the caller, and any `keys` of
        the resolver's own (a phone number, say); RATE_LIMITED, with when to retry, once over."""
        if self.limits is None:
            return
        who = [address_key(self.address)] if self.address else []
        if self.auth.principal is not None:
            who.append(principal_key(self.auth.principal.actor))
        wait = await self.limits.check(policy, [*who, *(f"key:{k}" for k in keys)], cost=cost)
        if wait is not None:
            self.retry_after = wait
            raise rate_limited(wait)

    @property
    def is_operator(self) -> bool:
        """Operators (any role) may see the schema and GraphQL's suggestions; nobody else."""
        principal = self.auth.principal
        return principal is not None and principal.kind is PrincipalKind.OPERATOR

    @property
    def may_explore(self) -> bool:
        """Introspection and GraphiQL: operators, or every caller where development allows it."""
        return self.is_operator or self.settings.graphql_public_introspection

    @property
    def feed(self) -> ChangeFeed:
        """This instance's change feed (subscriptions)."""
        if self._feed is None:
            raise RuntimeError("this context has no change feed")
        return self._feed

    @property
    def integrations(self) -> Integrations:
        """WeChat, SMS and rate limits: the app's, or (a context built elsewhere) this context's own."""
        if self._integrations is None:
            self._integrations = Integrations.from_settings(self.settings)
        return self._integrations

    @property
    def principal(self) -> Principal:
        """The caller, or UNAUTHENTICATED."""
        if self.auth.principal is None:
            raise Unauthenticated(self.auth.error or "send 'Authorization: Bearer <key or token>'")
        return self.auth.principal

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """A mutation's one write transaction: services flush, this boundary commits. The whole
        of `work` runs again, in a new transaction, when the database aborts it for contention
        (a deadlock or serialization failure), up to `write_attempts` times."""

        await self.reads.close()  # no connection held while waiting for the writer's

        async def attempt() -> T:
            async with self.db.write_sessions() as session, session.begin():
                session.info[TRACE_ID] = self.trace_id
                return await work(session)

        result = await retrying(
            attempt, attempts=self.settings.write_attempts, what="the change", outcome="nothing was changed"
        )
        self.refresh()
        return result

    async def write_at_once(self, work: Callable[[Any], Awaitable[tuple[T, int] | None]]) -> T | None:
        """A write that is one autocommitted statement on PostgreSQL, on an asyncpg connection of
        its own (no SQLAlchemy, no transaction held across round trips): `work` answers its result
        and the outbox cursor it appended, or None when it wrote nothing. None means "take the long
        way" (`write`): so on SQLite, and when the database aborted the statement for contention."""
        direct = self.db.direct_writes or self.db.direct
        if self.db.direct is None or direct is None:
            return None
        await self.reads.close()
        try:
            async with direct.connection() as conn:
                done = await work(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            return None  # nothing was written; the long way runs it again, retrying as it does
        if done is None:
            return None
        result, cursor = done
        for ring in self.db.write_sessions.kw["info"].get(ON_COMMITTED, ()):
            ring(cursor)  # as a session's commit rings them (app/services/changes.py)
        self.refresh()
        return result

    def refresh(self) -> None:
        """After a committed write, reads in the same request must see it: start loaders afresh."""
        # A snapshot (SQLite's read transaction) taken before the write must not serve after it.
        if self.reads.holds:
            self._retired.append(self.reads)
            self.reads = SharedReads(shared=self.reads.shared)
        self.loaders = Loaders(self.db, self.dictionary, self.settings, self.reads)

    async def close(self) -> None:
        """The request is answered: give its read connections back."""
        retired, self._retired = self._retired, []
        for reads in (*retired, self.reads):
            await reads.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session for a resolver's one-off lookup (await no loader inside it)."""
        async with self.reads.session(self.db) as session:
            yield session

    async def reveal_pii(self, user_id: int, field: str) -> None:
        """About to show `user_id`'s unmasked PII in `field`: audit it first (the request's reads
        batched into one write), and keep this answer out of the response cache, whose hits
        would show it again with no audit entry."""
        self.uncacheable()
        if self.held_reveals is not None:
            self.held_reveals.append((user_id, field))
            return
        await self.loaders.pii_read_by_user_id(self.principal.actor, self.trace_id).load((user_id, field))

    def hold_reveals(self) -> None:
        """Keep the audit of reveals back until `release_reveals` (or drop them with `refresh`)."""
        self.held_reveals = []

    async def release_reveals(self) -> None:
        """Audit the reveals held back, in one batch as the resolvers' concurrent reveals are."""
        held, self.held_reveals = self.held_reveals or [], None
        if held:
            loader = self.loaders.pii_read_by_user_id(self.principal.actor, self.trace_id)
            await loader.load_many(held)


def new_trace_id() -> str:
    """The request's trace id when tracing is on (app/observability/tracing.py), else a short
    random id: it finds a request's errors in the log, its audit entries and its trace."""
    return current_trace_id() or secrets.token_hex(8)
