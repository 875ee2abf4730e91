"""SQL for funnels: each step's occurrences staged in a temporary table of one hub transaction
(by INSERT ... SELECT from stores on the hub's database), then the steps joined in order there."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    cast,
    column,
    extract,
    func,
    insert,
    literal,
    null,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.channel_models import ChannelEvent, ChannelOrder, RawRecord
from app.db.models import Identity, SignIn
from app.stores.bulk import is_postgres

WEEK = 604800
MONDAY = 345600  # 1970-01-05, the first Monday after the epoch, in seconds
_HITS = table("funnel_hits", column("step"), column("ref"), column("user_id"), column("at_s"))


def occurrences(
    *,
    action: str,
    channels: Sequence[str],
    since: datetime,
    until: datetime,
    event_types: Sequence[str] = (),
    paid_codes: Sequence[int] = (),
) -> Select[str, Any]:
    """(ref, at) of one action in these channels; SEEN is each identity's first record ever."""
    chans = list(channels)
    stmt: Select[str, Any]
    if action == "SEEN":
        r = RawRecord
        return (
            select(r.identity_ref.label("ref"), func.min(r.occurred_at).label("at"))
            .where(r.channel.in_(chans))
            .group_by(r.identity_ref)
        )
    if action == "ORDERED":
        o = ChannelOrder
        return select(o.identity_ref.label("ref"), o.placed_at.label("at")).where(
            o.channel.in_(chans), o.placed_at >= since, o.placed_at <= until
        )
    if action == "PAID":
        # When it reached PAID; an order cancelled since no longer counts.
        o = ChannelOrder
        return select(o.identity_ref.label("ref"), o.paid_at.label("at")).where(
            o.channel.in_(chans),
            o.status_code.in_(list(paid_codes)),
            o.paid_at >= since,
            o.paid_at <= until,
        )
    e = ChannelEvent
    stmt = select(e.identity_ref.label("ref"), e.occurred_at.label("at")).where(
        e.channel.in_(chans), e.type.in_(list(event_types)), e.occurred_at >= since, e.occurred_at <= until
    )
    return stmt


def signed_in(*, channels: Sequence[str], since: datetime, until: datetime) -> Select[str, Any]:
    """(ref, at) of the sign-ins through Troika in these channels."""
    s = SignIn
    return select(s.identity_ref.label("ref"), s.at.label("at")).where(
        s.channel.in_(list(channels)), s.at >= since, s.at <= until
    )


async def read(session: AsyncSession, stmt: Select[str, Any]) -> list[tuple[str, datetime]]:
    """The occurrences of a store in a database of its own, to stage in the hub."""
    return [(ref, at) for ref, at in (await session.execute(stmt)).all()]


async def linked(
    session: AsyncSession, *, step: int, openid_appids: Sequence[str], app_user_ids: bool
) -> None:
    """Stage, per user, the first link of an identity of the channels (their appids' openids, APP ids)."""
    i = Identity
    cond = (i.kind == "OPENID") & i.namespace.in_(list(openid_appids))
    if app_user_ids:
        cond = cond | (i.kind == "APP_USER_ID")
    first = select(i.user_id, func.min(i.linked_at).label("at")).where(cond).group_by(i.user_id).subquery()
    rows = select(literal(step), null(), first.c.user_id, _epoch(session, first.c.at))
    await session.execute(insert(_HITS).from_select(["step", "ref", "user_id", "at_s"], rows))


def _epoch(session: AsyncSession, at: Any) -> Any:
    """Whole seconds since the epoch of a stored time, as each database counts them."""
    if is_postgres(session):
        return cast(func.floor(extract("epoch", at)), BigInteger)
    return cast(func.strftime("%s", at), Integer)


async def create(session: AsyncSession) -> None:
    """A temporary table of this transaction's hits: (step, identity ref or user, epoch seconds)."""
    await session.execute(
        text(
            "CREATE TEMPORARY TABLE funnel_hits (step INTEGER NOT NULL, ref VARCHAR(220),"
            " user_id BIGINT, at_s BIGINT NOT NULL)"
        )
    )


async def stage_select(session: AsyncSession, step: int, stmt: Select[str, Any]) -> None:
    """Stage the occurrences of a store on the hub's database without leaving it."""
    found = stmt.subquery()
    rows = select(literal(step), found.c.ref, null(), _epoch(session, found.c.at))
    await session.execute(insert(_HITS).from_select(["step", "ref", "user_id", "at_s"], rows))


async def stage_rows(session: AsyncSession, step: int, found: list[tuple[str, datetime]]) -> None:
    """Stage occurrences read from a store in a database of its own."""
    if found:
        rows = [{"step": step, "ref": ref, "user_id": None, "at_s": _seconds(at)} for ref, at in found]
        await session.execute(insert(_HITS), rows)


def _seconds(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def _funnel_sql(kinds: Sequence[str]) -> str:
    """Each step's first hit after the previous one and within the window of step 0, per person.

    Step 0's refs are resolved against every identity; later steps' only against the identities
    of the persons who entered, so the hash joins stay small however many hits there are."""
    ref = "i.kind || '|' || i.namespace || '|' || i.value"

    def source(k: int, resolved: str) -> str:
        # SEEN happens once per person: the first appearance, wherever it falls.
        if kinds[k] == "SEEN":
            return (
                f"h{k} AS (SELECT uid, MIN(at_s) AS at_s FROM {resolved} WHERE uid IS NOT NULL GROUP BY uid)"
            )
        return f"h{k} AS (SELECT uid, at_s FROM {resolved} WHERE uid IS NOT NULL)"

    parts = [
        f"r0 AS (SELECT COALESCE(h.user_id, i.user_id) AS uid, h.at_s FROM funnel_hits h"
        f" LEFT JOIN identities i ON h.step = 0 AND {ref} = h.ref WHERE h.step = 0)",
        source(0, "r0"),
        "s0 AS (SELECT uid, MIN(at_s) AS t0 FROM h0 WHERE at_s >= :from_s AND at_s < :to_s GROUP BY uid)",
        f"mine AS (SELECT {ref} AS ref, i.user_id FROM identities i JOIN s0 ON s0.uid = i.user_id)",
    ]
    for k in range(1, len(kinds)):
        parts.append(
            f"r{k} AS (SELECT COALESCE(h.user_id, m.user_id) AS uid, h.at_s FROM funnel_hits h"
            f" LEFT JOIN mine m ON m.ref = h.ref WHERE h.step = {k})"
        )
        parts.append(source(k, f"r{k}"))
        prev = ", ".join(f"s.t{j}" for j in range(k))
        parts.append(
            f"s{k} AS (SELECT s.uid, {prev}, MIN(h.at_s) AS t{k} FROM s{k - 1} s JOIN h{k} h"
            f" ON h.uid = s.uid AND h.at_s > s.t{k - 1} AND h.at_s <= s.t0 + :within_s"
            f" GROUP BY s.uid, {prev})"
        )
    cols = ", ".join(f"s{k}.t{k} AS t{k}" for k in range(len(kinds)))
    joins = " ".join(f"LEFT JOIN s{k} ON s{k}.uid = s0.uid" for k in range(1, len(kinds)))
    parts.append(f"reached AS (SELECT s0.uid, {cols} FROM s0 {joins})")
    return "WITH " + ",\n".join(parts)


async def reach(
    session: AsyncSession, *, kinds: Sequence[str], from_s: int, to_s: int, within_s: int
) -> None:
    """Per person, when they reached each step (NULL where they stopped), into a temporary table
    of this transaction, so the cohorts and the medians read it rather than join again."""
    if is_postgres(session):
        await session.execute(text("ANALYZE funnel_hits"))  # temporary tables are never auto-analysed
    cols = ", ".join(f"t{k}" for k in range(len(kinds)))
    sql = f"CREATE TEMPORARY TABLE funnel_reached AS {_funnel_sql(kinds)}\nSELECT uid, {cols} FROM reached"
    await session.execute(text(sql), {"from_s": from_s, "to_s": to_s, "within_s": within_s})


async def cohorts(session: AsyncSession, *, steps: int) -> list[tuple[int, list[int]]]:
    """Per week of step 0 (its Monday, epoch seconds), how many persons reached each step."""
    counts = ", ".join(f"COUNT(t{k})" for k in range(steps))
    sql = (
        f"SELECT ((t0 - {MONDAY}) / {WEEK}) * {WEEK} + {MONDAY} AS week, {counts}"
        f" FROM funnel_reached GROUP BY ((t0 - {MONDAY}) / {WEEK}) ORDER BY 1"
    )
    rows = (await session.execute(text(sql))).all()
    return [(int(r[0]), [int(n) for n in r[1:]]) for r in rows]


async def medians(session: AsyncSession, *, steps: int) -> list[float | None]:
    """Per step after the first, the median seconds from the previous step over who reached it."""
    out: list[float | None] = [None]
    for k in range(1, steps):
        sql = (
            f"WITH d AS (SELECT t{k} - t{k - 1} AS d FROM funnel_reached WHERE t{k} IS NOT NULL),"
            " r AS (SELECT d, ROW_NUMBER() OVER (ORDER BY d) AS rn, COUNT(*) OVER () AS c FROM d)"
            " SELECT AVG(d) FROM r WHERE rn IN ((c + 1) / 2, (c + 2) / 2)"
        )
        value = (await session.execute(text(sql))).scalar()
        out.append(None if value is None else float(value))
    return out
