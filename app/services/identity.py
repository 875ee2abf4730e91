"""The identity graph's rules: ownership, one-per-namespace, merge, unmerge, dry runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain import (
    IdentityKey,
    IdentityKind,
    IdentityRecord,
    LinkOutcome,
    MergeRecord,
    UserRecord,
)
from app.errors import DomainError, NotFound
from app.services import audit
from app.services.changes import Topic, announce, record_changes, users_changed
from app.services.consents import ConsentLedger
from app.services.identity_rules import (
    MAX_ATTEMPTS,
    LinkRequest,
    Retry,
    audited,
    check_one_per_namespace,
    shown,
)
from app.services.phone_proof import PhoneProof, ProvenPhones
from app.stores import identity as store
from app.stores import identity_bulk as bulk
from app.stores import merges as merges_store


@dataclass(frozen=True)
class EnsuredUsers:
    """Who owns each identity, and which of those users ensure_users created."""

    owners: dict[IdentityKey, int]
    created: frozenset[int]


class IdentityGraph:
    """Operations on the graph inside the caller's transaction; it flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link(self, req: LinkRequest) -> LinkOutcome:
        """Attach `req.keys` to one user, merging owners; the same plan answers a dry run."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.session.begin_nested():
                    return await self._link_once(req)
            except (Retry, IntegrityError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _link_once(self, req: LinkRequest) -> LinkOutcome:
        s = self.session
        await store.lock_identity_keys(s, req.keys)
        owners = await store.identities_by_keys(s, req.keys)
        target: UserRecord | None = None
        if req.user_id is not None:
            target = (await store.resolve_users(s, [req.user_id])).get(req.user_id)
            if target is None:
                raise NotFound(f"user {req.user_id} does not exist", code="USER_NOT_FOUND")
        ids = {o.user_id for o in owners.values()} | ({target.id} if target else set())
        if not ids:
            return await self._create(req)
        locked, records = await store.lock_and_read_users(s, ids)
        if any(locked.get(i, -1) is not None for i in ids):
            raise Retry  # a participant was merged away after we read its identities
        users = sorted(records.values(), key=lambda u: (u.created_at, u.id))
        held = await store.identities_by_user_ids(s, [u.id for u in users])
        new_keys = [k for k in dict.fromkeys(req.keys) if k not in owners]
        check_one_per_namespace(held, new_keys, users[0].id)
        survivor, absorbed = users[0], users[1:]
        at = utcnow()
        reason = "link of " + ", ".join(f"{k.describe()} {shown(k)}" for k in req.keys)
        if req.dry_run:
            merges = tuple(
                MergeRecord(id=None, survivor_id=survivor.id, absorbed_id=u.id, at=at) for u in absorbed
            )
            return LinkOutcome(user=survivor, merges=merges, dry_run=True)
        merges = tuple([await self._merge(survivor, u, held[u.id], req.actor, reason) for u in absorbed])
        await self._insert_links(survivor.id, new_keys, req, at=at)
        if merges:
            await users_changed(s, [u.id for u in users], topics=[Topic.MERGE])
        if new_keys:
            await users_changed(s, [survivor.id], topics=[Topic.IDENTITY])
        return LinkOutcome(user=survivor, merges=merges, dry_run=False)

    async def prove_phone(
        self, *, user_id: int | None, phone: IdentityKey, actor: str, source: str
    ) -> PhoneProof:
        """A phone the person just proved: app/services/phone_proof.py."""
        return await ProvenPhones(self).prove(user_id=user_id, phone=phone, actor=actor, source=source)

    async def ensure_users(
        self, keys: Sequence[IdentityKey], *, actor: str, rule: str, source: str, announce: bool = True
    ) -> EnsuredUsers:
        """The owner of each key, with a new user for each unheld one: ingestion's bulk path.

        A single identity never merges anyone, so this needs no locks: users are created
        optimistically and the ones whose identity another writer claimed first are dropped
        before commit, leaving exactly one owner per identity. With `announce=False` the caller
        takes over users_changed for `created` (topic IDENTITY), in this same transaction: ingestion
        folds it into the call for the records it stores, so no user row is bumped twice.
        """
        s = self.session
        wanted = list(dict.fromkeys(keys))
        owners = await bulk.owners_of_keys(s, wanted)
        missing = [k for k in wanted if k not in owners]
        if not missing:
            return EnsuredUsers(owners, frozenset())
        at = utcnow()
        async with s.begin_nested():
            user_ids = await bulk.create_users(s, count=len(missing), at=at)
            rows = [
                {
                    "user_id": uid,
                    "kind": k.kind.value,
                    "namespace": k.namespace,
                    "value": k.value,
                    "verified": False,
                    "linked_at": at,
                    "rule": rule,
                    "source": source,
                    "actor": actor,
                }
                for k, uid in zip(missing, user_ids, strict=True)
            ]
            inserted = await bulk.link_if_free(s, rows, at=at, actor=actor)
            claimed = {i.user_id for i in inserted}
            await bulk.delete_users(s, [uid for uid in user_ids if uid not in claimed])
            details: dict[tuple[IdentityKind, str], dict[str, object]] = {}  # alike: one JSON document
            for i in inserted:
                if (i.kind, i.namespace) not in details:
                    details[(i.kind, i.namespace)] = audited(i, rule=rule, created=True)
            await audit.record_many(
                s,
                actor=actor,
                action="identity.link",
                entries=[(i.user_id, details[(i.kind, i.namespace)]) for i in inserted],
            )
            if announce:  # users made here start at version 1: announced, not bumped
                await record_changes(s, [(u, Topic.IDENTITY) for u in claimed], fresh=claimed)
        owners.update({i.key: i.user_id for i in inserted})
        lost = [k for k in missing if k not in owners]
        if lost:
            owners.update(await bulk.owners_of_keys(s, lost))
        return EnsuredUsers(owners, frozenset(claimed))

    async def _create(self, req: LinkRequest) -> LinkOutcome:
        keys = list(dict.fromkeys(req.keys))
        check_one_per_namespace({}, keys, None)
        if req.dry_run:
            return LinkOutcome(user=None, merges=(), dry_run=True)
        at = utcnow()
        user = await store.create_user(self.session, at=at)
        await self._insert_links(user.id, keys, req, at=at, created=True)
        # A user made in this transaction starts at version 1, as if bumped once: no reader has
        # seen it, so there is no version to advance (nor row lock to take); the outbox announces it.
        announce(self.session, [(user.id, Topic.IDENTITY)])
        return LinkOutcome(user=user, merges=(), dry_run=False)

    async def _record(self, actor: str, action: str, user_id: int, details: dict[str, object]) -> None:
        await audit.record(self.session, actor=actor, action=action, user_id=user_id, details=details)

    async def _insert_links(
        self,
        user_id: int,
        keys: Sequence[IdentityKey],
        req: LinkRequest,
        *,
        at: datetime,
        created: bool = False,
    ) -> None:
        """Link `keys` to the user and audit each link; a single link's entry rides in its statement."""
        s = self.session
        more = {"rule": req.rule, "verified": req.verified} | ({"created": True} if created else {})
        entries: list[tuple[int | None, dict[str, Any]]] = [(user_id, audited(k, **more)) for k in keys]
        carried = (
            audit.entry(s, actor=req.actor, action="identity.link", user_id=user_id, details=entries[0][1])
            if len(keys) == 1
            else None
        )
        for key in keys:
            await store.insert_identity(
                s,
                user_id=user_id,
                key=key,
                verified=req.verified,
                rule=req.rule,
                source=req.source,
                actor=req.actor,
                at=at,
                audit=carried,
            )
        if carried is None:
            await audit.record_many(s, actor=req.actor, action="identity.link", entries=entries)

    async def _merge(
        self,
        survivor: UserRecord,
        absorbed: UserRecord,
        identities: Sequence[IdentityRecord],
        actor: str,
        reason: str,
    ) -> MergeRecord:
        s, at = self.session, utcnow()
        ids = [i.id for i in identities]
        merge = await merges_store.insert_merge(
            s,
            survivor_id=survivor.id,
            absorbed_id=absorbed.id,
            identity_ids=ids,
            at=at,
            actor=actor,
            reason=reason,
        )
        await store.move_identities(s, ids, survivor.id)
        await store.set_merged_into(s, absorbed.id, survivor.id)
        assert merge.id is not None
        await ConsentLedger(s).merged(
            survivor_id=survivor.id, absorbed_id=absorbed.id, merge_id=merge.id, actor=actor, at=at
        )
        for ident in identities:
            await store.add_edge(
                s, action="merge", user_id=survivor.id, identity=ident, at=at, actor=actor, merge_id=merge.id
            )
        await self._record(
            actor,
            "identity.merge",
            survivor.id,
            {"mergeId": merge.id, "absorbedId": absorbed.id, "identities": [audited(i) for i in identities]},
        )
        return merge

    async def unlink(self, *, user_id: int, key: IdentityKey, actor: str) -> UserRecord:
        """Close one link; the edge history keeps it."""
        s = self.session
        user = (await store.resolve_users(s, [user_id])).get(user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist", code="USER_NOT_FOUND")
        await store.lock_users(s, [user.id])
        held = (await store.identities_by_keys(s, [key])).get(key)
        if held is None or held.user_id != user.id:
            raise NotFound(
                f"user {user.id} holds no {key.describe()} {shown(key)}", code="IDENTITY_NOT_LINKED"
            )
        await store.delete_identity(s, held.id)
        await store.add_edge(s, action="unlink", user_id=user.id, identity=held, at=utcnow(), actor=actor)
        await self._record(actor, "identity.unlink", user.id, audited(held, identityId=held.id))
        await users_changed(s, [user.id], topics=[Topic.IDENTITY])
        return user

    async def unmerge(self, *, merge_id: int, actor: str) -> tuple[UserRecord, UserRecord]:
        """Give the absorbed user back its id and the identities it brought that are still linked."""
        s = self.session
        merge = await merges_store.merge_for_update(s, merge_id)
        if merge is None:
            raise NotFound(f"merge {merge_id} does not exist", code="MERGE_NOT_FOUND")
        if merge.undone_at is not None:
            raise DomainError(f"merge {merge_id} was already undone", code="MERGE_ALREADY_UNDONE")
        survivor = (await store.resolve_users(s, [merge.survivor_id])).get(merge.survivor_id)
        if survivor is None:  # the people it joined were erased
            raise NotFound(f"merge {merge_id} does not exist", code="MERGE_NOT_FOUND")
        await store.lock_users(s, {survivor.id, merge.absorbed_id})
        absorbed = (await store.users_by_ids(s, [merge.absorbed_id]))[merge.absorbed_id]
        brought = await store.identities_by_ids(s, await merges_store.merge_identity_ids(s, merge_id))
        back = [i for i in brought if i.user_id == survivor.id]
        at = utcnow()
        await store.move_identities(s, [i.id for i in back], absorbed.id)
        await store.set_merged_into(s, absorbed.id, None)
        for ident in back:
            await store.add_edge(
                s,
                action="unmerge",
                user_id=absorbed.id,
                identity=ident,
                at=at,
                actor=actor,
                merge_id=merge_id,
            )
        await merges_store.mark_merge_undone(s, merge_id, at=at, actor=actor)
        # The consents of the merge's own survivor, even if a later merge absorbed it since.
        await ConsentLedger(s).unmerged(
            survivor_id=merge.survivor_id, absorbed_id=absorbed.id, merge_id=merge_id, actor=actor, at=at
        )
        await self._record(
            actor,
            "identity.unmerge",
            survivor.id,
            {"mergeId": merge_id, "restoredId": absorbed.id, "identities": [audited(i) for i in back]},
        )
        await users_changed(s, [survivor.id, absorbed.id], topics=[Topic.MERGE])
        return survivor, absorbed
