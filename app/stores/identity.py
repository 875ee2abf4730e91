"""SQL for the identity graph; knows tables and rows, no rules.

Values cross this module in clear; at rest a phone is its blind index (`value`) and a ciphertext
(`sealed`), translated here with the session's keyring (app/pii.py).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal_column, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from app import pii
from app.db.models import Identity, IdentityEdge, User
from app.domain import (
    EdgeRecord,
    IdentityKey,
    IdentityKind,
    IdentityRecord,
    UserRecord,
)
from app.sealing import Keyring
from app.stores import audit as audit_store
from app.stores.bulk import is_postgres

_IDENTITY_COLUMNS = (
    Identity.id,
    Identity.user_id,
    Identity.kind,
    Identity.namespace,
    Identity.value,
    Identity.sealed,
    Identity.verified,
    Identity.linked_at,
    Identity.rule,
    Identity.source,
    Identity.actor,
)


def _identity(row: Any, keyring: Keyring) -> IdentityRecord:
    """A row of `_IDENTITY_COLUMNS` as a record, its value in clear."""
    m = row._mapping
    return IdentityRecord(
        id=m["id"],
        user_id=m["user_id"],
        kind=IdentityKind(m["kind"]),
        namespace=m["namespace"],
        value=pii.opened(keyring, m["value"], m["sealed"]),
        verified=m["verified"],
        linked_at=m["linked_at"],
        rule=m["rule"],
        source=m["source"],
        actor=m["actor"],
        ref=pii.ref(m["kind"], m["namespace"], m["value"]),
    )


# For app/stores/identity_bulk.py, which writes the same rows in bulk.
IDENTITY_COLUMNS = _IDENTITY_COLUMNS
identity_record = _identity


_USERS_BY_IDS = select(
    User.id, User.created_at, User.merged_into_id, User.data_version, User.erased_at
).where(User.id.in_(bindparam("ids", expanding=True)))


async def resolve_users(session: AsyncSession, ids: Sequence[int]) -> dict[int, UserRecord]:
    """Map each id to the active user it resolves to: one plain read, then merges followed if any.

    An active user's record carries its data version; one reached through a merge carries none.
    Erased users resolve to nobody.
    """
    if not ids:
        return {}
    rows = (await session.execute(_USERS_BY_IDS, {"ids": list(set(ids))})).all()
    rows = [r for r in rows if r.erased_at is None]
    found = {
        r.id: UserRecord(id=r.id, created_at=r.created_at, version=r.data_version)
        for r in rows
        if r.merged_into_id is None
    }
    absorbed = [r.id for r in rows if r.merged_into_id is not None]
    if absorbed:
        found.update(await _follow_merges(session, absorbed))
    return found


async def _follow_merges(session: AsyncSession, ids: Sequence[int]) -> dict[int, UserRecord]:
    """Each absorbed id to the end of its merge chain, in one recursive statement."""
    start = (
        select(
            User.id.label("start_id"),
            User.id.label("id"),
            User.merged_into_id.label("next_id"),
            literal_column("0").label("depth"),
        )
        .where(User.id.in_(set(ids)))
        .cte("chain", recursive=True)
    )
    nxt = (
        select(start.c.start_id, User.id, User.merged_into_id, start.c.depth + 1)
        .join(User, User.id == start.c.next_id)
        .where(start.c.depth < 64)
    )
    chain = start.union_all(nxt)
    stmt = (
        select(chain.c.start_id, User.id, User.created_at)
        .join(User, User.id == chain.c.id)
        .where(chain.c.next_id.is_(None), User.erased_at.is_(None))
    )
    rows = (await session.execute(stmt)).all()
    return {r.start_id: UserRecord(id=r.id, created_at=r.created_at) for r in rows}


_IDENTITIES_BY_USER_IDS = (
    select(*_IDENTITY_COLUMNS)
    .where(Identity.user_id.in_(bindparam("ids", expanding=True)))
    .order_by(Identity.user_id, Identity.linked_at, Identity.id)
)


async def identities_by_user_ids(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[IdentityRecord]]:
    """Current identities of each user, oldest link first."""
    out: dict[int, list[IdentityRecord]] = defaultdict(list)
    if not user_ids:
        return out
    keyring = pii.keyring_of(session)
    for row in (await session.execute(_IDENTITIES_BY_USER_IDS, {"ids": list(set(user_ids))})).all():
        rec = _identity(row, keyring)
        out[rec.user_id].append(rec)
    return out


def merge_cluster(root_ids: Iterable[int]) -> CTE:
    """(root_id, id): each root and every user merged into it, directly or along a chain."""
    start = (
        select(User.id.label("root_id"), User.id.label("id"))
        .where(User.id.in_(set(root_ids)))
        .cte("cluster", recursive=True)
    )
    return start.union_all(select(start.c.root_id, User.id).join(User, User.merged_into_id == start.c.id))


async def history_by_user_ids(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[EdgeRecord]]:
    """The edges of each user and of every user merged into it, oldest first, in one statement."""
    out: dict[int, list[EdgeRecord]] = defaultdict(list)
    if not user_ids:
        return out
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, IdentityEdge)
        .join(IdentityEdge, IdentityEdge.user_id == members.c.id)
        .order_by(members.c.root_id, IdentityEdge.at, IdentityEdge.id)
    )
    keyring = pii.keyring_of(session)
    for root_id, e in (await session.execute(stmt)).all():
        out[root_id].append(
            EdgeRecord(
                id=e.id,
                user_id=e.user_id,
                action=e.action,
                kind=IdentityKind(e.kind),
                namespace=e.namespace,
                value=pii.opened(keyring, e.value, e.sealed),
                rule=e.rule,
                source=e.source,
                actor=e.actor,
                at=e.at,
                merge_id=e.merge_id,
                ref=pii.ref(e.kind, e.namespace, e.value),
            )
        )
    return out


async def identities_by_keys(
    session: AsyncSession, keys: Iterable[IdentityKey]
) -> dict[IdentityKey, IdentityRecord]:
    """Who holds each of `keys` now (absent keys are simply missing)."""
    keyring = pii.keyring_of(session)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for k in set(keys):
        groups[(k.kind.value, k.namespace)].append(pii.stored_value(keyring, k.kind, k.value))
    conds = [
        and_(Identity.kind == kind, Identity.namespace == ns, Identity.value.in_(values))
        for (kind, ns), values in groups.items()
    ]
    if not conds:
        return {}
    rows = (await session.execute(select(*_IDENTITY_COLUMNS).where(or_(*conds)))).all()
    return {rec.key: rec for rec in (_identity(r, keyring) for r in rows)}


async def identities_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[IdentityRecord]:
    """Rows by id, for the identities a merge recorded."""
    if not ids:
        return []
    keyring = pii.keyring_of(session)
    rows = (await session.execute(select(*_IDENTITY_COLUMNS).where(Identity.id.in_(ids)))).all()
    return [_identity(r, keyring) for r in rows]


async def lock_identity_keys(session: AsyncSession, keys: Iterable[IdentityKey]) -> None:
    """Serialize writers of the same identity on PostgreSQL (SQLite writers are already serial).

    The lock is named by the identity's ref (a phone's blind index): pg_locks shows lock keys.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keyring = pii.keyring_of(session)
    for key in sorted({pii.ref_of(keyring, k) for k in keys}):
        digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": digest})


async def lock_users(session: AsyncSession, ids: Iterable[int]) -> dict[int, int | None]:
    """Lock user rows in id order; returns each id's `merged_into_id`."""
    stmt = (
        select(User.id, User.merged_into_id).where(User.id.in_(set(ids))).order_by(User.id).with_for_update()
    )
    return {r.id: r.merged_into_id for r in (await session.execute(stmt)).all()}


async def lock_and_read_users(
    session: AsyncSession, ids: Iterable[int]
) -> tuple[dict[int, int | None], dict[int, UserRecord]]:
    """lock_users, and in the same statement users_by_ids: each id's `merged_into_id`, and the
    records of those not erased."""
    stmt = (
        select(User.id, User.created_at, User.merged_into_id, User.erased_at)
        .where(User.id.in_(set(ids)))
        .order_by(User.id)
        .with_for_update()
    )
    rows = (await session.execute(stmt)).all()
    records = {r.id: UserRecord(id=r.id, created_at=r.created_at) for r in rows if r.erased_at is None}
    return {r.id: r.merged_into_id for r in rows}, records


async def users_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, UserRecord]:
    """Users exactly as stored, without following merges (erased ones left out)."""
    stmt = select(User.id, User.created_at).where(User.id.in_(set(ids)), User.erased_at.is_(None))
    rows = (await session.execute(stmt)).all()
    return {r.id: UserRecord(id=r.id, created_at=r.created_at) for r in rows}


async def create_user(session: AsyncSession, *, at: datetime) -> UserRecord:
    """A new user row; its id is the one the API shows. It starts at data version 1: its creation
    is its first change, announced without a bump (`record_changes(fresh=…)`)."""
    stmt = insert(User).values(created_at=at, data_version=1).returning(User.id)
    new_id = (await session.execute(stmt)).scalar_one()
    return UserRecord(id=new_id, created_at=at)


async def add_edge(
    session: AsyncSession,
    *,
    action: str,
    user_id: int,
    identity: IdentityRecord,
    at: datetime,
    actor: str,
    rule: str | None = None,
    source: str | None = None,
    merge_id: int | None = None,
) -> None:
    """Append to the history, the only way it grows."""
    keyring = pii.keyring_of(session)
    await session.execute(
        insert(IdentityEdge).values(
            at=at,
            action=action,
            user_id=user_id,
            identity_id=identity.id,
            kind=identity.kind.value,
            namespace=identity.namespace,
            value=pii.stored_value(keyring, identity.kind, identity.value),
            sealed=pii.sealed_value(keyring, identity.kind, identity.value),
            rule=rule or identity.rule,
            source=source or identity.source,
            actor=actor,
            merge_id=merge_id,
        )
    )


async def insert_identity(
    session: AsyncSession,
    *,
    user_id: int,
    key: IdentityKey,
    verified: bool,
    rule: str,
    source: str,
    actor: str,
    at: datetime,
    audit: dict[str, Any] | None = None,
) -> IdentityRecord:
    """Create a link and its history edge together (on PostgreSQL in one statement, with `audit`,
    the audit entry describing the link, if given)."""
    keyring = pii.keyring_of(session)
    stored = pii.stored_value(keyring, key.kind, key.value)
    sealed = pii.sealed_value(keyring, key.kind, key.value)
    if is_postgres(session):
        params = {
            "user_id": user_id,
            "kind": key.kind.value,
            "namespace": key.namespace,
            "value": stored,
            "sealed": sealed,
            "verified": verified,
            "at": at,
            "rule": rule,
            "source": source,
            "actor": actor,
        }
        more = ""
        if audit is not None:
            entry, audit_params = audit_store.carried(audit)
            params |= audit_params
            more = f", {entry}"
        new_id = (await session.execute(text(_LINK_PG.format(more=more)), params)).scalar_one()
        return _linked(new_id, user_id, key, verified, rule, source, actor, at, stored)
    new_id = (
        await session.execute(
            insert(Identity)
            .values(
                user_id=user_id,
                kind=key.kind.value,
                namespace=key.namespace,
                value=stored,
                sealed=sealed,
                verified=verified,
                linked_at=at,
                rule=rule,
                source=source,
                actor=actor,
            )
            .returning(Identity.id)
        )
    ).scalar_one()
    rec = _linked(new_id, user_id, key, verified, rule, source, actor, at, stored)
    await add_edge(session, action="link", user_id=user_id, identity=rec, at=at, actor=actor)
    if audit is not None:
        await audit_store.append_many(session, [audit])
    return rec


# The link, its history edge (which names it) and, in {more}, the entry describing it: one statement.
_LINK_PG = (
    "WITH linked AS (INSERT INTO identities (user_id, kind, namespace, value, sealed, verified, linked_at,"
    " rule, source, actor) VALUES (CAST(:user_id AS bigint), CAST(:kind AS text), CAST(:namespace AS text),"
    " CAST(:value AS text), CAST(:sealed AS text), CAST(:verified AS boolean), CAST(:at AS timestamptz),"
    " CAST(:rule AS text), CAST(:source AS text), CAST(:actor AS text)) RETURNING id),"
    " edge AS (INSERT INTO identity_edges (at, action, user_id, identity_id, kind, namespace, value, sealed,"
    " rule, source, actor, merge_id) SELECT CAST(:at AS timestamptz), 'link', CAST(:user_id AS bigint),"
    " linked.id, CAST(:kind AS text), CAST(:namespace AS text), CAST(:value AS text), CAST(:sealed AS text),"
    " CAST(:rule AS text), CAST(:source AS text), CAST(:actor AS text), NULL FROM linked){more}"
    " SELECT id FROM linked"
)


def _linked(
    new_id: int,
    user_id: int,
    key: IdentityKey,
    verified: bool,
    rule: str,
    source: str,
    actor: str,
    at: datetime,
    stored: str,
) -> IdentityRecord:
    return IdentityRecord(
        id=new_id,
        user_id=user_id,
        kind=key.kind,
        namespace=key.namespace,
        value=key.value,
        verified=verified,
        linked_at=at,
        rule=rule,
        source=source,
        actor=actor,
        ref=pii.ref(key.kind, key.namespace, stored),
    )


async def mark_verified(
    session: AsyncSession,
    identity: IdentityRecord,
    *,
    user_id: int,
    rule: str,
    source: str,
    actor: str,
    at: datetime,
) -> None:
    """A held identity the person has now proven: it says so, and the history says when and how."""
    await session.execute(
        update(Identity).where(Identity.id == identity.id).values(verified=True, rule=rule, source=source)
    )
    await add_edge(
        session,
        action="verify",
        user_id=user_id,
        identity=identity,
        at=at,
        actor=actor,
        rule=rule,
        source=source,
    )


async def delete_identity(session: AsyncSession, identity_id: int) -> None:
    """Remove a current link (its edges stay)."""
    await session.execute(delete(Identity).where(Identity.id == identity_id))


async def move_identities(session: AsyncSession, identity_ids: Sequence[int], to_user_id: int) -> None:
    """Re-point links to another user, as merges and unmerges do."""
    if identity_ids:
        await session.execute(
            update(Identity).where(Identity.id.in_(identity_ids)).values(user_id=to_user_id)
        )


async def set_merged_into(session: AsyncSession, user_id: int, merged_into_id: int | None) -> None:
    """Make a user resolve to another (or to itself again with None)."""
    await session.execute(update(User).where(User.id == user_id).values(merged_into_id=merged_into_id))


async def active_users_page(session: AsyncSession, *, first: int, after_id: int | None) -> list[UserRecord]:
    """Active users by id, keyset-paged; one row more than asked tells if there is a next page."""
    stmt = select(User.id, User.created_at).where(User.merged_into_id.is_(None), User.erased_at.is_(None))
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    rows = (await session.execute(stmt.order_by(User.id).limit(first + 1))).all()
    return [UserRecord(id=r.id, created_at=r.created_at) for r in rows]


async def count_active_users(session: AsyncSession) -> int:
    """How many people there are: absorbed users are not counted."""
    stmt = (
        select(func.count()).select_from(User).where(User.merged_into_id.is_(None), User.erased_at.is_(None))
    )
    return int((await session.execute(stmt)).scalar_one())
