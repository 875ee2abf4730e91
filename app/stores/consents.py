"""SQL for the consent ledger: appends and reads, never an UPDATE or a DELETE (triggers refuse them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConsentEntry
from app.domain import Channel
from app.domain.entitlements import Cause, ConsentEntryRecord, Purpose
from app.stores import audit as audit_store
from app.stores.bulk import Columns, insert_rows, is_postgres
from app.stores.identity import merge_cluster


def _record(e: Any) -> ConsentEntryRecord:
    return ConsentEntryRecord(
        id=e.id,
        user_id=e.user_id,
        purpose=Purpose(e.purpose),
        channel=Channel(e.channel) if e.channel else None,
        granted=e.granted,
        source_channel=Channel(e.source_channel),
        policy_version=e.policy_version,
        effective_at=e.effective_at,
        actor=e.actor,
        cause=Cause(e.cause),
        merge_id=e.merge_id,
    )


_LATEST_IDS = (
    select(func.max(ConsentEntry.id))
    .where(ConsentEntry.user_id.in_(bindparam("ids", expanding=True)))
    .group_by(ConsentEntry.user_id, ConsentEntry.purpose, ConsentEntry.channel)
)
_CURRENT = (
    select(ConsentEntry)
    .where(ConsentEntry.id.in_(_LATEST_IDS.scalar_subquery()))
    .order_by(ConsentEntry.user_id, ConsentEntry.purpose, ConsentEntry.channel)
)


async def current_by_user_ids(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[ConsentEntryRecord]]:
    """The latest entry of every cell of each user (cleared cells included), in one statement."""
    out: dict[int, list[ConsentEntryRecord]] = defaultdict(list)
    if not user_ids:
        return out
    for e in (await session.execute(_CURRENT, {"ids": list(set(user_ids))})).scalars():
        out[e.user_id].append(_record(e))
    return out


async def entries_of(session: AsyncSession, user_id: int) -> list[ConsentEntryRecord]:
    """One user's own ledger, oldest first: what the write path reasons over."""
    stmt = select(ConsentEntry).where(ConsentEntry.user_id == user_id).order_by(ConsentEntry.id)
    return [_record(e) for e in (await session.execute(stmt)).scalars()]


async def history_by_user_ids(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[ConsentEntryRecord]]:
    """The ledgers of each user and of every user merged into it, oldest first, in one statement."""
    out: dict[int, list[ConsentEntryRecord]] = defaultdict(list)
    if not user_ids:
        return out
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, ConsentEntry)
        .join(ConsentEntry, ConsentEntry.user_id == members.c.id)
        .order_by(members.c.root_id, ConsentEntry.id)
    )
    for root_id, e in (await session.execute(stmt)).all():
        out[root_id].append(_record(e))
    return out


_LEDGER: Columns = (
    ("user_id", "bigint"),
    ("purpose", "text"),
    ("channel", "text"),
    ("granted", "boolean"),
    ("source_channel", "text"),
    ("policy_version", "text"),
    ("effective_at", "timestamptz"),
    ("actor", "text"),
    ("cause", "text"),
    ("merge_id", "bigint"),
)


async def append(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, audit: dict[str, Any] | None = None
) -> None:
    """The only way the ledger grows (and the only statement this module writes).

    `audit` is the audit entry describing the rows: on PostgreSQL the same statement writes it.
    """
    if not rows:
        if audit is not None:
            await audit_store.append_many(session, [audit])
        return
    if is_postgres(session):
        if audit is None:
            await insert_rows(session, "consent_entries", _LEDGER, rows)
        else:
            entry, more = audit_store.carried(audit)
            await insert_rows(
                session, "consent_entries", _LEDGER, rows, around=f"WITH {entry} {{insert}}", more=more
            )
        return
    await session.execute(insert(ConsentEntry), list(rows))
    if audit is not None:
        await audit_store.append_many(session, [audit])
