"""SQL for the consent ledger: appends and reads, never an UPDATE or a DELETE (triggers refuse them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConsentEntry
from app.domain import Channel, UserRecord
from app.domain.entitlements import Cause, ConsentEntryRecord, Purpose
from app.jsoncodec import dumps
from app.stores import audit as audit_store
from app.stores.bulk import Columns, insert_rows, is_postgres
from app.stores.changes import HEAD_CTE
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


# The whole of one user's consent change, for an asyncpg connection in autocommit: the version
# bump that locks the user (an active one: else no row, and nothing written) and reads the clock,
# the audit entry, the ledger rows, and the outbox row numbered under the head's lock, taken after
# the user's and released by the statement's own commit, with no round trip to the client while
# it is held.
_SET_AT_ONCE = (
    "WITH bumped AS (UPDATE users SET data_version = users.data_version + 1"
    " WHERE users.id = CAST($1 AS bigint) AND users.merged_into_id IS NULL AND users.erased_at IS NULL"
    " AND (NOT CAST($15 AS boolean) OR EXISTS (SELECT 1 FROM identities AS i WHERE i.user_id = users.id"
    " AND (i.kind = ANY($16::text[])"
    " OR (i.kind, i.namespace) IN (SELECT * FROM unnest($17::text[], $18::text[])))))"
    " RETURNING users.id, users.created_at, users.data_version, clock_timestamp() AS at),"
    " audit_entry AS (INSERT INTO audit_log (at, actor, principal_kind, action, target_user_id, details,"
    " trace_id) SELECT bumped.at, CAST($2 AS text), CAST($3 AS text), CAST($4 AS text),"
    " bumped.id, CAST($5 AS json), CAST($6 AS text) FROM bumped),"
    " ledger AS (INSERT INTO consent_entries (user_id, purpose, channel, granted, source_channel,"
    " policy_version, effective_at, actor, cause, merge_id)"
    " SELECT bumped.id, x.purpose, x.channel, x.granted, x.source_channel, x.policy_version,"
    " bumped.at, CAST($7 AS text), x.cause, NULL"
    " FROM bumped, unnest($8::text[], $9::text[], $10::boolean[], $11::text[], $12::text[],"
    " $13::text[]) WITH ORDINALITY AS x(purpose, channel, granted, source_channel, policy_version, cause, n)"
    " ORDER BY x.n), "
    + HEAD_CTE.format(count="1", after=" FROM bumped")
    + ", written AS (INSERT INTO changes (id, user_id, topic, at)"
    " SELECT head.last, bumped.id, CAST($14 AS text), bumped.at FROM head, bumped RETURNING id)"
    " SELECT bumped.id, bumped.created_at, bumped.data_version, (SELECT max(id) FROM written) AS cursor"
    " FROM bumped"
)


async def set_at_once(
    conn: Any,
    user_id: int,
    rows: Sequence[dict[str, Any]],
    *,
    audit: dict[str, Any],
    topic: str,
    scope: tuple[list[str], list[tuple[str, str]]] | None,
) -> tuple[UserRecord, int] | None:
    """Append one active user's ledger rows (all by one actor) with their audit entry, bump the
    user and announce `topic`, in one autocommitted statement on PostgreSQL (asyncpg). All are
    dated by the database's clock once the user is locked, so one user's entries are ordered alike
    by id and by effective time however writers race (the rows' and the entry's own times unused).

    `scope`, when given, is what the user must hold for the write to happen: an identity of one
    of these kinds, or of one of these (kind, namespace) pairs (a service's channel).
    The user as bumped and the outbox cursor; None when `user_id` is absorbed, erased, unknown or
    out of `scope` (nothing was written: the caller takes the long way, which says why).
    """
    kinds, pairs = scope or ([], [])
    found = await conn.fetchrow(
        _SET_AT_ONCE,
        user_id,
        audit["actor"],
        audit["principal_kind"],
        audit["action"],
        dumps(audit["details"]),
        audit["trace_id"],
        rows[0]["actor"],
        [r["purpose"] for r in rows],
        [r["channel"] for r in rows],
        [r["granted"] for r in rows],
        [r["source_channel"] for r in rows],
        [r["policy_version"] for r in rows],
        [r["cause"] for r in rows],
        topic,
        scope is not None,
        kinds,
        [k for k, _ in pairs],
        [n for _, n in pairs],
    )
    if found is None:
        return None
    created_at = found["created_at"].astimezone(UTC)
    user = UserRecord(id=found["id"], created_at=created_at, version=found["data_version"])
    return user, found["cursor"]
