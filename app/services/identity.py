"""The identity graph's rules: ownership, one-per-namespace, merge, unmerge, dry runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain import (
    NAMESPACED_KINDS,
    IdentityKey,
    IdentityKind,
    IdentityRecord,
    LinkOutcome,
    MergeRecord,
    UserRecord,
)
from app.errors import DomainError, IdentityConflict, InvalidInput, NotFound
from app.phones import mask_phone, normalize_phone
from app.services import audit
from app.services.changes import Topic, users_changed
from app.services.consents import ConsentLedger
from app.stores import identity as store
from app.stores import identity_bulk as bulk

MAX_ATTEMPTS = 3


class _Retry(Exception):
    """The graph moved under us between reading and locking; plan again."""


def make_key(kind: IdentityKind, value: str, namespace: str | None, *, phone_region: str) -> IdentityKey:
    """Validate and normalize one identity as the graph stores it."""
    value = value.strip()
    namespace = (namespace or "").strip()
    if not value:
        raise InvalidInput(f"{kind} value is empty", field="value")
    if kind in NAMESPACED_KINDS and not namespace:
        what = "the issuing appid" if kind is IdentityKind.OPENID else "the provider"
        raise InvalidInput(f"{kind} needs a namespace: {what}", field="namespace")
    if kind not in NAMESPACED_KINDS and namespace:
        raise InvalidInput(f"{kind} takes no namespace", field="namespace")
    if len(value) > 128 or len(namespace) > 64:
        raise InvalidInput(f"{kind} value or namespace is too long", field="value")
    if kind is IdentityKind.PHONE:
        value = normalize_phone(value, default_region=phone_region)
    if kind is IdentityKind.EXTERNAL:
        namespace = namespace.lower()
    return IdentityKey(kind, namespace, value)


def shown(key: IdentityKey) -> str:
    """An identity's value as an error message may show it (phones masked)."""
    return mask_phone(key.value) if key.kind is IdentityKind.PHONE else key.value


def audited(key: IdentityKey | IdentityRecord, **more: object) -> dict[str, object]:
    """An identity as the audit log names it: kind and namespace, never the value (the log outlives
    an erasure, so it holds nothing that identifies a person but user ids)."""
    return {"kind": key.kind.value, "namespace": key.namespace or None, **more}


@dataclass(frozen=True)
class PhoneProof:
    """What proving a phone did: the user now holding it, a merge, or whose link was recycled."""

    user: UserRecord
    merges: tuple[MergeRecord, ...]
    recycled_from: int | None
    replaced: bool


@dataclass(frozen=True)
class EnsuredUsers:
    """Who owns each identity, and which of those users ensure_users created."""

    owners: dict[IdentityKey, int]
    created: frozenset[int]


@dataclass(frozen=True)
class LinkRequest:
    keys: Sequence[IdentityKey]
    user_id: int | None
    actor: str
    rule: str
    source: str
    verified: bool = False
    dry_run: bool = False


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
            except (_Retry, IntegrityError):
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
        locked = await store.lock_users(s, ids)
        if any(locked.get(i, -1) is not None for i in ids):
            raise _Retry  # a participant was merged away after we read its identities
        users = sorted((await store.users_by_ids(s, ids)).values(), key=lambda u: (u.created_at, u.id))
        held = await store.identities_by_user_ids(s, [u.id for u in users])
        new_keys = [k for k in dict.fromkeys(req.keys) if k not in owners]
        _check_one_per_namespace(held, new_keys, users[0].id)
        survivor, absorbed = users[0], users[1:]
        at = utcnow()
        reason = "link of " + ", ".join(f"{k.describe()} {shown(k)}" for k in req.keys)
        if req.dry_run:
            merges = tuple(
                MergeRecord(id=None, survivor_id=survivor.id, absorbed_id=u.id, at=at) for u in absorbed
            )
            return LinkOutcome(user=survivor, merges=merges, dry_run=True)
        merges = tuple([await self._merge(survivor, u, held[u.id], req.actor, reason) for u in absorbed])
        for key in new_keys:
            await store.insert_identity(
                s,
                user_id=survivor.id,
                key=key,
                verified=req.verified,
                rule=req.rule,
                source=req.source,
                actor=req.actor,
                at=at,
            )
        await self._audit_links(survivor.id, new_keys, req)
        if merges:
            await users_changed(s, [u.id for u in users], topics=[Topic.MERGE])
        if new_keys:
            await users_changed(s, [survivor.id], topics=[Topic.IDENTITY])
        return LinkOutcome(user=survivor, merges=merges, dry_run=False)

    async def prove_phone(
        self, *, user_id: int | None, phone: IdentityKey, actor: str, source: str
    ) -> PhoneProof:
        """A phone the person just proved (SMS, WeChat): bind it to `user_id`, or sign in by it.

        The user's previous phone is replaced. A phone held by another user merges the two, unless
        they cannot be one person (the merge would conflict): then the number was recycled, and it
        moves here while the former owner's link is closed with that reason. Never refused.
        """
        assert phone.kind is IdentityKind.PHONE
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.session.begin_nested():
                    return await self._prove_phone_once(user_id, phone, actor, source)
            except (_Retry, IntegrityError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _prove_phone_once(
        self, user_id: int | None, phone: IdentityKey, actor: str, source: str
    ) -> PhoneProof:
        s = self.session
        await store.lock_identity_keys(s, [phone])
        held_by = (await store.identities_by_keys(s, [phone])).get(phone)
        if user_id is None:  # signing in with the phone: its holder, or a new user
            if held_by is None:
                link = LinkRequest([phone], None, actor, "verified", source, verified=True)
                created = (await self._create(link)).user
                assert created is not None
                return PhoneProof(created, (), None, False)
            user_id = held_by.user_id
        target = (await store.resolve_users(s, [user_id])).get(user_id)
        if target is None:
            raise NotFound(f"user {user_id} does not exist", code="USER_NOT_FOUND")
        ids = {target.id} | ({held_by.user_id} if held_by else set())
        locked = await store.lock_users(s, ids)
        if any(locked.get(i, -1) is not None for i in ids):
            raise _Retry
        held = await store.identities_by_user_ids(s, list(ids))
        at = utcnow()
        proven = {"source": source}
        if held_by is not None and held_by.user_id == target.id:
            if not held_by.verified:
                await store.mark_verified(
                    s, held_by, user_id=target.id, rule="verified", source=source, actor=actor, at=at
                )
                await self._record(actor, "identity.prove-phone", target.id, audited(phone, **proven))
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
            await self._record(actor, "identity.replace", target.id, audited(old, identityId=old.id))
            mine.remove(old)
        await users_changed(s, [target.id], topics=[Topic.IDENTITY])
        if held_by is None:
            await self._link_proven(target.id, phone, actor=actor, source=source)
            await self._record(actor, "identity.prove-phone", target.id, audited(phone, **proven))
            return PhoneProof(target, (), None, old is not None)
        other_id = held_by.user_id
        try:
            _check_one_per_namespace({target.id: mine, other_id: held[other_id]}, [], target.id)
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
            await self._record(actor, "identity.recycle", other_id, audited(phone, provedBy=target.id))
            await self._record(
                actor, "identity.prove-phone", target.id, audited(phone, recycledFrom=other_id, **proven)
            )
            await users_changed(s, [other_id], topics=[Topic.IDENTITY])
            return PhoneProof(target, (), other_id, old is not None)
        other = (await store.users_by_ids(s, [other_id]))[other_id]
        survivor, absorbed = sorted([target, other], key=lambda u: (u.created_at, u.id))
        brought = mine if absorbed.id == target.id else list(held[other_id])
        reason = f"{shown(phone)} proven by user {target.id}: {source}"
        merge = await self._merge(survivor, absorbed, brought, actor, reason)
        await store.mark_verified(
            s, held_by, user_id=survivor.id, rule="verified", source=source, actor=actor, at=at
        )
        await self._record(
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
            if announce:
                await users_changed(s, claimed, topics=[Topic.IDENTITY])
        owners.update({i.key: i.user_id for i in inserted})
        lost = [k for k in missing if k not in owners]
        if lost:
            owners.update(await bulk.owners_of_keys(s, lost))
        return EnsuredUsers(owners, frozenset(claimed))

    async def _create(self, req: LinkRequest) -> LinkOutcome:
        keys = list(dict.fromkeys(req.keys))
        _check_one_per_namespace({}, keys, None)
        if req.dry_run:
            return LinkOutcome(user=None, merges=(), dry_run=True)
        at = utcnow()
        user = await store.create_user(self.session, at=at)
        for key in keys:
            await store.insert_identity(
                self.session,
                user_id=user.id,
                key=key,
                verified=req.verified,
                rule=req.rule,
                source=req.source,
                actor=req.actor,
                at=at,
            )
        await self._audit_links(user.id, keys, req, created=True)
        await users_changed(self.session, [user.id], topics=[Topic.IDENTITY])
        return LinkOutcome(user=user, merges=(), dry_run=False)

    async def _record(self, actor: str, action: str, user_id: int, details: dict[str, object]) -> None:
        await audit.record(self.session, actor=actor, action=action, user_id=user_id, details=details)

    async def _audit_links(
        self, user_id: int, keys: Sequence[IdentityKey], req: LinkRequest, *, created: bool = False
    ) -> None:
        more = {"rule": req.rule, "verified": req.verified} | ({"created": True} if created else {})
        await audit.record_many(
            self.session,
            actor=req.actor,
            action="identity.link",
            entries=[(user_id, audited(k, **more)) for k in keys],
        )

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
        merge = await store.insert_merge(
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
        merge = await store.merge_for_update(s, merge_id)
        if merge is None:
            raise NotFound(f"merge {merge_id} does not exist", code="MERGE_NOT_FOUND")
        if merge.undone_at is not None:
            raise DomainError(f"merge {merge_id} was already undone", code="MERGE_ALREADY_UNDONE")
        survivor = (await store.resolve_users(s, [merge.survivor_id])).get(merge.survivor_id)
        if survivor is None:  # the people it joined were erased
            raise NotFound(f"merge {merge_id} does not exist", code="MERGE_NOT_FOUND")
        await store.lock_users(s, {survivor.id, merge.absorbed_id})
        absorbed = (await store.users_by_ids(s, [merge.absorbed_id]))[merge.absorbed_id]
        brought = await store.identities_by_ids(s, await store.merge_identity_ids(s, merge_id))
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
        await store.mark_merge_undone(s, merge_id, at=at, actor=actor)
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


def _check_one_per_namespace(
    held: dict[int, list[IdentityRecord]], new_keys: Sequence[IdentityKey], target_id: int | None
) -> None:
    """Refuse a link whose resulting user would hold two identities of one (kind, namespace)."""
    slots: dict[tuple[IdentityKind, str], dict[str, int | None]] = defaultdict(dict)
    for user_id, identities in held.items():
        for ident in identities:
            slots[(ident.kind, ident.namespace)][ident.value] = user_id
    for key in new_keys:
        slots[(key.kind, key.namespace)].setdefault(key.value, None)
    for (kind, namespace), values in slots.items():
        if len(values) < 2:
            continue
        where = f"{kind}" + (f" of {namespace}" if namespace else "")
        held_by = ", ".join(
            f"{mask_phone(v) if kind is IdentityKind.PHONE else v}"
            + (f" (user {u})" if u is not None else " (new)")
            for v, u in values.items()
        )
        raise IdentityConflict(
            f"one user may hold one {where}; this link would give user "
            f"{target_id if target_id is not None else '(new)'} {len(values)}: {held_by}",
            kind=kind.value,
            namespace=namespace or None,
            userIds=sorted({str(u) for u in values.values() if u is not None}),
        )
