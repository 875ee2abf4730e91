"""Saved audiences: named conditions over the unified user, evaluated in SQL; the members of a saved
one are kept (filled when saved, followed live by app/services/audience_live.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import appid_channels
from app.db.engine import Database
from app.db.models import Audience, User
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.domain.entitlements import Purpose
from app.errors import InvalidInput
from app.ingest.dictionary import DataDictionary
from app.services import audit
from app.services.audience_conditions import Node, parse_condition, pruned
from app.services.audience_eval import evaluated
from app.services.changes import Topic, record_changes
from app.settings import Settings
from app.stores import audience_members as members_store
from app.stores import changes as outbox
from app.stores import identity as identity_store

NAME = re.compile(r"^[\w\-. \u4e00-\u9fff]{1,100}$")


EventRow = members_store.EventRow
EVENTS_PAGE = members_store.PAGE
NO_CONSENT, NOT_REACHABLE, UNSUBSCRIBED = "NO_CONSENT", "NOT_REACHABLE", "UNSUBSCRIBED"


@dataclass(frozen=True, slots=True)
class Recipients:
    """A page of recipient ids (one more than asked when another page follows), the total, and
    the members left out by reason."""

    user_ids: list[int]
    total: int
    excluded: dict[str, int]


@dataclass(frozen=True, slots=True)
class AudienceRecord:
    id: int
    name: str
    description: str | None
    condition: dict[str, Any]
    updated_at: datetime


def _record(a: Audience) -> AudienceRecord:
    return AudienceRecord(a.id, a.name, a.description, a.condition, a.updated_at)


class Audiences:
    """Checks, saves and evaluates audiences; evaluation is one SQL condition (audience_eval)."""

    def __init__(self, db: Database, dictionary: DataDictionary, settings: Settings) -> None:
        self.db, self.dictionary, self.settings = db, dictionary, settings

    def parse(self, raw: object) -> Node:
        """The checked tree of a condition as given (or saved)."""
        return parse_condition(
            raw,
            max_depth=self.settings.audience_max_depth,
            max_nodes=self.settings.audience_max_nodes,
            order_statuses=set(self.dictionary.status_names.values()),
            reservation_statuses=set(self.dictionary.reservation_status_names.values()),
        )

    async def check(self, node: Node) -> None:
        """Compile once without reading members, so a condition that cannot compile is never saved."""
        async with evaluated(self.db, self.dictionary, self.settings, node, now=utcnow(), only=[]):
            pass

    async def save(
        self, session: AsyncSession, *, name: str, condition: Any, description: str | None, actor: str
    ) -> AudienceRecord:
        name = name.strip()
        if not NAME.match(name):
            raise InvalidInput("name: 1 to 100 letters, digits, spaces, '-', '_' or '.'", field="name")
        if description is not None and len(description) > 2000:
            raise InvalidInput("description: at most 2000 characters", field="description")
        saved = pruned(condition)
        await self.check(self.parse(saved))
        now = utcnow()
        found = (await session.execute(select(Audience).where(Audience.name == name))).scalar_one_or_none()
        if found is None:
            found = Audience(name=name, created_at=now)
            session.add(found)
        new = found.id is None
        found.description, found.condition, found.updated_at, found.updated_by = (
            description,
            saved,
            now,
            actor,
        )
        # The follower re-evaluates whoever changes after this cursor (it may have passed them by
        # before this save commits); everything before it, the full evaluation below sees.
        found.live_from = await outbox.last_cursor(session)
        await session.flush()
        await self.fill(session, found.id, saved, events=not new)
        await audit.record(
            session,
            actor=actor,
            action="audience.save",
            user_id=None,
            details={"name": name, "condition": saved},
        )
        return _record(found)

    async def fill(
        self, session: AsyncSession, audience_id: int, condition: dict[str, Any], *, events: bool
    ) -> int:
        """Evaluate the whole audience in SQL and keep its members; entries and exits are recorded
        (and announced in the outbox) when `events`. Returns how many moved."""
        now_in = await self.evaluate(condition, None)
        before = await members_store.kept(session, audience_id, None)
        return await self.move(session, audience_id, now_in - before, before - now_in, events=events)

    async def move(
        self, session: AsyncSession, audience_id: int, entered: set[int], left: set[int], *, events: bool
    ) -> int:
        """Apply entries and exits to the kept membership, in the caller's transaction."""
        if not entered and not left:
            return 0
        await members_store.apply(
            session, audience_id, entered=entered, left=left, at=utcnow(), events=events
        )
        if events:
            await record_changes(session, [(u, Topic.AUDIENCE) for u in entered | left])
        return len(entered) + len(left)

    async def evaluate(self, condition: dict[str, Any], user_ids: Sequence[int] | None) -> set[int]:
        """Who is in the audience now: everyone, or only among `user_ids` (one SQL statement)."""
        if user_ids is not None and not user_ids:
            return set()
        node = self.parse(condition)
        async with evaluated(
            self.db, self.dictionary, self.settings, node, now=utcnow(), only=user_ids
        ) as ev:
            if user_ids is None:
                return set((await ev.session.execute(ev.members())).scalars())
            return await ev.among(user_ids)

    async def delete(self, session: AsyncSession, *, name: str, actor: str) -> bool:
        gone = await session.execute(delete(Audience).where(Audience.name == name).returning(Audience.id))
        row = gone.first()
        if row is None:
            return False
        await members_store.forget(session, row[0])
        await audit.record(
            session, actor=actor, action="audience.delete", user_id=None, details={"name": name}
        )
        return True

    async def get(self, session: AsyncSession, name: str) -> AudienceRecord | None:
        found = (await session.execute(select(Audience).where(Audience.name == name))).scalar_one_or_none()
        return None if found is None else _record(found)

    async def all(self, session: AsyncSession) -> list[AudienceRecord]:
        return [
            _record(a) for a in (await session.execute(select(Audience).order_by(Audience.name))).scalars()
        ]

    async def kept_size(self, audience_id: int) -> int:
        """A saved audience's size, from its kept membership."""
        async with self.db.read_sessions() as session:
            return await members_store.size(session, audience_id)

    async def kept_members(
        self, audience_id: int, *, first: int, after_id: int | None
    ) -> tuple[list[int], int]:
        """A page of kept members (one more than `first` when another page follows), and the size."""
        async with self.db.read_sessions() as session:
            ids = await members_store.page(session, audience_id, first=first + 1, after_id=after_id)
            return ids, await members_store.size(session, audience_id)

    async def size(self, condition: dict[str, Any]) -> int:
        async with evaluated(
            self.db, self.dictionary, self.settings, self.parse(condition), now=utcnow()
        ) as ev:
            return await ev.size()

    async def members(
        self, condition: dict[str, Any], *, first: int, after_id: int | None
    ) -> tuple[list[int], int]:
        """A page of member ids (one more than `first` when another page follows) and the size."""
        async with evaluated(
            self.db, self.dictionary, self.settings, self.parse(condition), now=utcnow()
        ) as ev:
            return await ev.page(first=first + 1, after_id=after_id), await ev.size()

    async def recipients(
        self,
        condition: dict[str, Any],
        *,
        channel: Channel,
        purpose: Purpose,
        first: int,
        after_id: int | None,
    ) -> Recipients:
        """Members reachable in `channel` for `purpose`, and the others counted by the first reason
                that leaves them out (EventRow = members_store.EventRow
        EVENTS_PAGE = members_store.PAGE
        NO_CONSENT, NOT_REACHABLE, UNSUBSCRIBED)."""
        node = self.parse(condition)
        async with evaluated(self.db, self.dictionary, self.settings, node, now=utcnow()) as ev:
            reach = await ev.reach(channel, purpose)
            consent, reachable = reach["consent"], reach["reachable"]
            following = reach.get("following", reachable)
            ok = [consent, reachable, following]
            ids = await ev.page_where(ok, first=first + 1, after_id=after_id)
            total = await ev.count(*ok)
            excluded = {
                NO_CONSENT: await ev.count(not_(consent)),
                NOT_REACHABLE: await ev.count(consent, not_(reachable)),
            }
            if channel is Channel.OFFICIAL_ACCOUNT:
                excluded[UNSUBSCRIBED] = await ev.count(consent, reachable, not_(following))
        return Recipients(ids, total, {k: v for k, v in excluded.items() if v})

    async def export(
        self,
        name: str,
        *,
        channel: Channel,
        purpose: Purpose,
        actor: str,
        page: int = 1000,
        progress: Callable[[int, int], None] | None = None,
    ) -> AsyncIterator[tuple[int, str | None, str | None, str | None]]:
        """Every recipient of a saved audience as (user id, openid, unionid, APP account id), in
        user id order, page by page; `progress(done, total)` after each page. Audited."""
        async with self.db.read_sessions() as session:
            found = await self.get(session, name)
        if found is None:
            raise InvalidInput(f"no saved audience named {name!r}", field="name")
        async with self.db.write_sessions() as session, session.begin():
            details = {"name": name, "channel": channel.value, "purpose": purpose.value}
            await audit.record(session, actor=actor, action="audience.export", user_id=None, details=details)
        appid = {c: a for a, c in appid_channels(self.settings).items()}.get(channel)
        after, done = None, 0
        while True:
            chunk = await self.recipients(
                found.condition, channel=channel, purpose=purpose, first=page, after_id=after
            )
            ids = chunk.user_ids[:page]
            async with self.db.read_sessions() as session:
                held = await identity_store.identities_by_user_ids(session, ids)
            for uid in ids:
                mine = held.get(uid, [])
                openid = next(
                    (i.value for i in mine if i.kind is IdentityKind.OPENID and i.namespace == appid), None
                )
                unionid = next((i.value for i in mine if i.kind is IdentityKind.UNIONID), None)
                account = next((i.value for i in mine if i.kind is IdentityKind.APP_USER_ID), None)
                yield uid, openid if channel is not Channel.APP else None, unionid, account
            done += len(ids)
            if progress is not None:
                progress(done, chunk.total)
            if len(chunk.user_ids) <= page:
                return
            after = ids[-1]

    async def consenting(self, user_ids: Sequence[int], *, channel: Channel, purpose: Purpose) -> set[int]:
        """Which of these users have `purpose`'s consent for `channel` now (as recipients require)."""
        if not user_ids:
            return set()
        node = self.parse({"consent": {"purpose": purpose.value}})
        async with evaluated(
            self.db, self.dictionary, self.settings, node, now=utcnow(), only=user_ids
        ) as ev:
            consent = (await ev.reach(channel, purpose))["consent"]
            ids = await ev.page_where(
                [consent, User.id.in_(list(user_ids))], first=len(user_ids), after_id=None
            )
        return set(ids)

    async def last_event(self) -> int:
        """The newest entry or exit recorded (0 for none): audienceChanged follows from there."""
        async with self.db.read_sessions() as session:
            return await members_store.last_event(session)

    async def events_after(self, audience_id: int, after: int) -> list[members_store.EventRow]:
        """One audience's entries and exits after event id `after`, oldest first (a page)."""
        async with self.db.read_sessions() as session:
            return await members_store.events_after(session, audience_id, after)

    async def of_users(self, user_ids: Sequence[int]) -> dict[int, list[str]]:
        """The saved audiences each of these users is in, from the kept membership."""
        out: dict[int, list[str]] = {uid: [] for uid in user_ids}
        if not user_ids:
            return out
        async with self.db.read_sessions() as session:
            out.update(await members_store.names_of(session, user_ids))
        return out
