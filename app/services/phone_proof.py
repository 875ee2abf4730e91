"""Proven phones (SMS, WeChat vouched for possession): replace, merge, or recycle; never refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from app.db.types import utcnow
from app.domain import IdentityKey, IdentityKind, MergeRecord, UserRecord
from app.errors import IdentityConflict, NotFound
from app.services.changes import Topic, users_changed
from app.services.identity_rules import (
    MAX_ATTEMPTS,
    LinkRequest,
    Retry,
    audited,
    check_one_per_namespace,
    shown,
)
from app.stores import identity as store

if TYPE_CHECKING:
    from app.services.identity import IdentityGraph


@dataclass(frozen=True)
class PhoneProof:
    """What proving a phone did: the user now holding it, a merge, or whose link was recycled."""

    user: UserRecord
    merges: tuple[MergeRecord, ...]
    recycled_from: int | None
    replaced: bool


class ProvenPhones:
    """A proof of one phone, inside the graph's transaction (the graph merges and records)."""

    def __init__(self, graph: IdentityGraph) -> None:
        self.graph = graph
        self.session = graph.session

    async def prove(self, *, user_id: int | None, phone: IdentityKey, actor: str, source: str) -> PhoneProof:
        """A phone the person just proved (SMS, WeChat): bind it to `user_id`, or sign in by it.

        The user's previous phone is replaced. A phone held by another user merges the two, unless
        they cannot be one person (the merge would conflict): then the number was recycled, and it
        moves here while the former owner's link is closed with that reason. Never refused.
        """
        assert phone.kind is IdentityKind.PHONE
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.session.begin_nested():
                    return await self._once(user_id, phone, actor, source)
            except (Retry, IntegrityError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _once(self, user_id: int | None, phone: IdentityKey, actor: str, source: str) -> PhoneProof:
        s = self.session
        await store.lock_identity_keys(s, [phone])
        held_by = (await store.identities_by_keys(s, [phone])).get(phone)
        if user_id is None:  # signing in with the phone: its holder, or a new user
            if held_by is None:
                link = LinkRequest([phone], None, actor, "verified", source, verified=True)
                created = (await self.graph._create(link)).user
                assert created is not None
                return PhoneProof(created, (), None, False)
            user_id = held_by.user_id
        target = (await store.resolve_users(s, [user_id])).get(user_id)
        if target is None:
            raise NotFound(f"user {user_id} does not exist", code="USER_NOT_FOUND")
        ids = {target.id} | ({held_by.user_id} if held_by else set())
        locked = await store.lock_users(s, ids)
        if any(locked.get(i, -1) is not None for i in ids):
            raise Retry
        held = await store.identities_by_user_ids(s, list(ids))
        at = utcnow()
        proven = {"source": source}
        if held_by is not None and held_by.user_id == target.id:
            if not held_by.verified:
                await store.mark_verified(
                    s, held_by, user_id=target.id, rule="verified", source=source, actor=actor, at=at
                )
                await self.graph._record(actor, "identity.prove-phone", target.id, audited(phone, **proven))
                await users_changed(s, [target.id], topics=[Topic.IDENTITY])
            return PhoneProof(target, (), None, False)
        mine = list(held[target.id])
        old = next((i for i in mine if i.kind is IdentityKind.PHONE), None)
        if old is not None:
            await store.delete_identity(s, old.id)
            await store.add_edge(
                s,
                action="unlink",
                user_id=target.id,
                identity=old,
                at=at,
                actor=actor,
                rule="replaced",
                source=f"replaced by {shown(phone)}, {source}"[:200],
            )
            await self.graph._record(actor, "identity.replace", target.id, audited(old, identityId=old.id))
            mine.remove(old)
        await users_changed(s, [target.id], topics=[Topic.IDENTITY])
        if held_by is None:
            await self._link_proven(target.id, phone, actor=actor, source=source)
            await self.graph._record(actor, "identity.prove-phone", target.id, audited(phone, **proven))
            return PhoneProof(target, (), None, old is not None)
        other_id = held_by.user_id
        try:
            check_one_per_namespace({target.id: mine, other_id: held[other_id]}, [], target.id)
        except IdentityConflict:  # two people: the number changed hands
            await store.delete_identity(s, held_by.id)
            await store.add_edge(
                s,
                action="unlink",
                user_id=other_id,
                identity=held_by,
                at=at,
                actor=actor,
                rule="recycled",
                source=f"recycled: proven by user {target.id}, {source}"[:200],
            )
            await self._link_proven(target.id, phone, actor=actor, source=source)
            await self.graph._record(actor, "identity.recycle", other_id, audited(phone, provedBy=target.id))
            await self.graph._record(
                actor, "identity.prove-phone", target.id, audited(phone, recycledFrom=other_id, **proven)
            )
            await users_changed(s, [other_id], topics=[Topic.IDENTITY])
            return PhoneProof(target, (), other_id, old is not None)
        other = (await store.users_by_ids(s, [other_id]))[other_id]
        survivor, absorbed = sorted([target, other], key=lambda u: (u.created_at, u.id))
        brought = mine if absorbed.id == target.id else list(held[other_id])
        reason = f"{shown(phone)} proven by user {target.id}: {source}"
        merge = await self.graph._merge(survivor, absorbed, brought, actor, reason)
        await store.mark_verified(
            s, held_by, user_id=survivor.id, rule="verified", source=source, actor=actor, at=at
        )
        await self.graph._record(
            actor, "identity.prove-phone", survivor.id, audited(phone, mergeId=merge.id, **proven)
        )
        await users_changed(s, [survivor.id, absorbed.id], topics=[Topic.MERGE, Topic.IDENTITY])
        return PhoneProof(survivor, (merge,), None, old is not None)

    async def _link_proven(self, user_id: int, phone: IdentityKey, *, actor: str, source: str) -> None:
        await store.insert_identity(
            self.session,
            user_id=user_id,
            key=phone,
            verified=True,
            rule="verified",
            source=source,
            actor=actor,
            at=utcnow(),
        )
