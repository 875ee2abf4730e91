"""The right to erasure: a person's data removed from every store, the consent ledger's proof kept.

What goes: the identities and their history, memberships, points, roles, SMS codes, WeChat
session keys and inbox pushes, and every channel-store row keyed by the person's identities
(orders, cart lines, events, raw records, rejected records), in every channel-store database.
What stays, naming nobody: the user rows (tombstones with `erased_at`, resolving to nobody), the
consent ledger (append-only; its entries now prove what an anonymous user agreed to, under which
policy, when), merges (their reason erased; other users' history points at them), the audit log
(user ids only) and the outbox (user ids and topics, pruned by age). The person's identities are
free again: signing up with them makes a new user.

A merged person is one person: erasing any of its ids erases the whole cluster (the survivor and
every user merged into it), since the unified view showed all of it as theirs.

Channel stores in other databases cannot share the hub's transaction: their rows are deleted
before it (most of them) and again after it commits (what arrived meanwhile). A failure before the
hub commits leaves the person in place, so erasing again finishes the work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.contention import retrying
from app.db.engine import ChannelStore, Database
from app.db.types import utcnow
from app.services import audit
from app.services.changes import Topic, users_changed
from app.services.person import Person, find_person
from app.settings import Settings
from app.stores import channel_personal as channel_store
from app.stores import identity as identity_store
from app.stores import personal as store
from app.stores import sign_ins

T = TypeVar("T")
HUB = "hub"


def store_name(st: ChannelStore) -> str:
    """How a report names a channel-store database: the hub's, or the channels it holds."""
    return HUB if st.shares_hub else "+".join(c.value for c in st.channels)


@dataclass
class ErasureReport:
    user_id: int
    user_ids: tuple[int, ...]
    at: datetime
    removed: dict[tuple[str, str], int] = field(default_factory=dict)  # (store, table): rows
    kept: dict[tuple[str, str], int] = field(default_factory=dict)  # anonymised, kept as proof

    def add(self, where: str, counts: dict[str, int]) -> None:
        for table, n in counts.items():
            self.removed[(where, table)] = self.removed.get((where, table), 0) + n


class Erasure:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def _retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        return await retrying(
            work,
            attempts=self.settings.write_attempts,
            what="the erasure",
            outcome="the person was not erased",
        )

    async def erase(self, user_id: int, *, actor: str, trace_id: str | None) -> ErasureReport:
        """Erase the person `user_id` belongs to; what was removed, per store and table."""
        async with self.db.read_sessions() as session:
            planned = await find_person(session, user_id)
        separate = [st for st in self.db.stores if not st.shares_hub]
        totals: dict[tuple[str, str], int] = {}
        for st in separate:  # most of the channel rows, before the hub forgets the identities
            for table, n in (await self._delete_refs(st, planned.refs)).items():
                totals[(store_name(st), table)] = n

        async def hub() -> tuple[ErasureReport, Person]:
            async with self.db.write_sessions() as session, session.begin():
                session.info[audit.TRACE_ID] = trace_id
                return await self._erase_hub(session, user_id, actor=actor, done=totals)

        report, person = await self._retrying(hub)
        for st in separate:  # what was ingested for the person while the hub was being erased
            report.add(store_name(st), await self._delete_refs(st, person.refs))
        return report

    async def _delete_refs(self, st: ChannelStore, refs: list[str]) -> dict[str, int]:
        async def work() -> dict[str, int]:
            async with st.engines.write_sessions() as session, session.begin():
                return await channel_store.delete_for_refs(session, refs)

        return await self._retrying(work)

    async def _erase_hub(
        self, session: AsyncSession, user_id: int, *, actor: str, done: dict[tuple[str, str], int]
    ) -> tuple[ErasureReport, Person]:
        person = await find_person(session, user_id)
        await identity_store.lock_users(session, person.ids)
        person = await find_person(session, user_id)  # as it is now that nobody can merge it away
        at = utcnow()
        report = ErasureReport(person.user.id, person.ids, at)
        for st in self.db.stores:
            if st.shares_hub:
                report.add(HUB, await channel_store.delete_for_refs(session, person.refs))
        for (where, table), n in done.items():
            report.removed[(where, table)] = report.removed.get((where, table), 0) + n
        removed, kept = await store.erase(
            session,
            person.ids,
            at=at,
            phone_indexes=person.phone_indexes,
            openids=person.openids,
            inbox_appid=self.settings.official_account_appid,
        )
        report.add(HUB, removed)
        report.add(HUB, {"sign_ins": await sign_ins.delete_for_refs(session, person.refs)})
        report.kept = {(HUB, table): n for table, n in kept.items()}
        await audit.record(
            session,
            actor=actor,
            action="user.erase",
            user_id=person.user.id,
            details={
                "userIds": list(person.ids),
                "removed": {f"{w}.{t}": n for (w, t), n in sorted(report.removed.items()) if n},
                "kept": {f"{w}.{t}": n for (w, t), n in sorted(report.kept.items())},
            },
        )
        # The change feed says so (listeners drop the person), the response cache forgets them.
        await users_changed(session, person.ids, topics=[Topic.ERASURE])
        return report, person
