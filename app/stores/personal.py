"""SQL for a person's data in the hub, whole: what an export reads and an erasure removes.

A person is a merge cluster (a user and every user merged into it). Rows are plain dicts of
column values (sealed values still sealed): the services decide what to show and what to open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.db.models import (
    ConsentEntry,
    Identity,
    IdentityEdge,
    Membership,
    Merge,
    MergeIdentity,
    PhoneCode,
    PointsEntry,
    RefreshToken,
    RoleGrant,
    User,
    WechatInbox,
    WechatSession,
)
from app.stores.identity import merge_cluster

Row = dict[str, Any]
StoredKey = tuple[str, str, str]  # (kind, namespace, value as stored: a phone's blind index)
ERASED_REASON = "erased"


async def cluster_of(session: AsyncSession, root_id: int) -> list[int]:
    """The user and every user merged into it (directly or along a chain), root first."""
    members = merge_cluster([root_id])
    ids = sorted((await session.execute(select(members.c.id))).scalars())
    return [root_id, *(i for i in ids if i != root_id)]


async def _rows(session: AsyncSession, stmt: Select[Any] | Any) -> list[Row]:
    return [dict(r) for r in (await session.execute(stmt)).mappings().all()]


def _of(model: Any, ids: Sequence[int], order: Iterable[Any] = ()) -> Select[Any]:
    return select(*model.__table__.columns).where(model.user_id.in_(ids)).order_by(*order, model.id)


async def export_rows(session: AsyncSession, ids: Sequence[int]) -> dict[str, list[Row]]:
    """Every hub row about these users, by table (consent and points ledgers whole, ended
    memberships and revoked roles included)."""
    return {
        "users": await _rows(
            session,
            select(User.id, User.created_at, User.merged_into_id).where(User.id.in_(ids)).order_by(User.id),
        ),
        "identities": await _rows(session, _of(Identity, ids, [Identity.linked_at])),
        "identity_edges": await _rows(session, _of(IdentityEdge, ids, [IdentityEdge.at])),
        "merges": await _rows(
            session,
            select(*Merge.__table__.columns)
            .where(or_(Merge.survivor_id.in_(ids), Merge.absorbed_id.in_(ids)))
            .order_by(Merge.id),
        ),
        "consent_entries": await _rows(session, _of(ConsentEntry, ids)),
        "memberships": await _rows(session, _of(Membership, ids)),
        "points_entries": await _rows(session, _of(PointsEntry, ids)),
        "role_grants": await _rows(session, _of(RoleGrant, ids)),
    }


async def historic_keys(session: AsyncSession, ids: Sequence[int]) -> set[StoredKey]:
    """Every identity these users hold or ever held (their history edges), as stored."""
    held = select(Identity.kind, Identity.namespace, Identity.value).where(Identity.user_id.in_(ids))
    was = select(IdentityEdge.kind, IdentityEdge.namespace, IdentityEdge.value).where(
        IdentityEdge.user_id.in_(ids)
    )
    rows = (await session.execute(held.union(was))).all()
    return {(r[0], r[1], r[2]) for r in rows}


async def held_by_others(
    session: AsyncSession, keys: Iterable[StoredKey], ids: Sequence[int]
) -> set[StoredKey]:
    """Which of `keys` a user outside `ids` holds now (a recycled phone, a moved identity)."""
    wanted = list(keys)
    if not wanted:
        return set()
    stmt = select(Identity.kind, Identity.namespace, Identity.value).where(
        tuple_(Identity.kind, Identity.namespace, Identity.value).in_(wanted), Identity.user_id.not_in(ids)
    )
    return {(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()}


async def _count_delete(session: AsyncSession, model: Any, where: Any) -> int:
    result = await session.execute(delete(model).where(where).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def erase(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    at: datetime,
    phone_indexes: Sequence[str],
    openids: Sequence[tuple[str, str]],
    inbox_appid: str | None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Remove these users' rows from the hub; their user rows stay as tombstones (`erased_at`),
    their consent ledger stays (the proof), now naming nobody. Returns (removed, kept) per table."""
    await session.execute(update(User).where(User.id.in_(ids)).values(erased_at=at))
    merges = select(Merge.id).where(or_(Merge.survivor_id.in_(ids), Merge.absorbed_id.in_(ids)))
    removed = {
        "identities": await _count_delete(session, Identity, Identity.user_id.in_(ids)),
        "identity_edges": await _count_delete(session, IdentityEdge, IdentityEdge.user_id.in_(ids)),
        "merge_identities": await _count_delete(
            session, MergeIdentity, MergeIdentity.merge_id.in_(merges.scalar_subquery())
        ),
        "memberships": await _count_delete(session, Membership, Membership.user_id.in_(ids)),
        # Append-only, but erasable for erased users (migration 20261125_0007's trigger).
        "points_entries": await _count_delete(session, PointsEntry, PointsEntry.user_id.in_(ids)),
        "role_grants": await _count_delete(session, RoleGrant, RoleGrant.user_id.in_(ids)),
        # Their sessions end: no refresh token of theirs renews anything any more.
        "refresh_tokens": await _count_delete(session, RefreshToken, RefreshToken.user_id.in_(ids)),
        "phone_codes": await _count_delete(session, PhoneCode, PhoneCode.phone_hash.in_(phone_indexes))
        if phone_indexes
        else 0,
        "wechat_sessions": await _count_delete(
            session, WechatSession, tuple_(WechatSession.appid, WechatSession.openid).in_(list(openids))
        )
        if openids
        else 0,
        "wechat_inbox": await _erase_inbox(session, inbox_appid, [o for a, o in openids if a == inbox_appid]),
    }
    # Merges stay (other users' history and the consent ledger point at them); their reason named
    # the identities that joined the two.
    anonymised = await session.execute(
        update(Merge)
        .where(Merge.id.in_(merges.scalar_subquery()), Merge.reason != ERASED_REASON)
        .values(reason=ERASED_REASON)
        .execution_options(synchronize_session=False)
    )
    consents = select(func.count()).select_from(ConsentEntry).where(ConsentEntry.user_id.in_(ids))
    kept = {
        "users": len(ids),
        "consent_entries": int((await session.execute(consents)).scalar_one()),
        "merges": int(anonymised.rowcount),  # type: ignore[attr-defined]
    }
    return removed, kept


async def _erase_inbox(session: AsyncSession, appid: str | None, openids: Sequence[str]) -> int:
    """Official-account pushes from these followers (the XML names them; so does the dedupe key)."""
    if appid is None or not openids:
        return 0
    column: InstrumentedAttribute[str] = WechatInbox.payload
    named = or_(
        *(
            or_(column.like(_like(o), escape="\\"), WechatInbox.dedupe_key.like(_like(o), escape="\\"))
            for o in openids
        )
    )
    return await _count_delete(session, WechatInbox, and_(WechatInbox.appid == appid, named))
