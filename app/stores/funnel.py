"""SQL for funnels: each step's occurrences from the channel stores, then the steps joined in order
in the hub (the occurrences of stores in databases of their own staged in a temporary table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.db.channel_models import ChannelEvent, ChannelOrder, RawRecord
from app.db.models import Identity, SignIn
from app.stores.bulk import is_postgres

WEEK = 604800
MONDAY = 345600  # 1970-01-05, the first Monday after the epoch, in seconds


async def occurrences(
    session: AsyncSession,
    *,
    action: str,
    channels: Sequence[str],
    since: datetime,
    until: datetime,
    event_types: Sequence[str] = (),
    paid_codes: Sequence[int] = (),
) -> list[tuple[str, datetime]]:
    """(identity_ref, at) of one action in these channels; SEEN is each identity's first record ever."""
    params: dict[str, Any] = {"channels": list(channels), "since": since, "until": until}
    chans: BindParameter[Any] = bindparam("channels", expanding=True)
    window: tuple[BindParameter[Any], BindParameter[Any]] = (bindparam("since"), bindparam("until"))
    stmt: Any
    if action == "SEEN":
        stmt = (
            select(RawRecord.identity_ref, func.min(RawRecord.occurred_at))
            .where(RawRecord.channel.in_(chans))
            .group_by(RawRecord.identity_ref)
        )
        params.pop("since"), params.pop("until")
    elif action == "ORDERED":
        o = ChannelOrder
        stmt = select(o.identity_ref, o.placed_at).where(
            o.channel.in_(chans), o.placed_at >= window[0], o.placed_at <= window[1]
        )
    elif action == "PAID":
        # When it reached PAID; an order cancelled since no longer counts.
        o = ChannelOrder
        stmt = select(o.identity_ref, o.paid_at).where(
            o.channel.in_(chans),
            o.status_code.in_(bindparam("paid", expanding=True)),
            o.paid_at >= window[0],
            o.paid_at <= window[1],
        )
        params["paid"] = list(paid_codes)
    else:
        e = ChannelEvent
        stmt = select(e.identity_ref, e.occurred_at).where(
            e.channel.in_(chans),
            e.type.in_(bindparam("types", expanding=True)),
            e.occurred_at >= window[0],
            e.occurred_at <= window[1],
        )
        params["types"] = list(event_types)
    return [(ref, at) for ref, at in (await session.execute(stmt, params)).all()]


async def signed_in(
    session: AsyncSession, *, channels: Sequence[str], since: datetime, until: datetime
) -> list[tuple[str, datetime]]:
    """(identity_ref, at) of the sign-ins through Troika in these channels."""
    s = SignIn
    stmt = select(s.identity_ref, s.at).where(
        s.channel.in_(bindparam("channels", expanding=True)), s.at >= since, s.at <= until
    )
    return [(ref, at) for ref, at in (await session.execute(stmt, {"channels": list(channels)})).all()]


async def linked(
    session: AsyncSession, *, openid_appids: Sequence[str], app_user_ids: bool
) -> list[tuple[int, datetime]]:
    """Per user, the first link of an identity of the channels (their appids' openids, APP ids)."""
    i = Identity
    cond = (i.kind == "OPENID") & i.namespace.in_(bindparam("appids", expanding=True))
    if app_user_ids:
        cond = cond | (i.kind == "APP_USER_ID")
    stmt = select(i.user_id, func.min(i.linked_at)).where(cond).group_by(i.user_id)
    return [(uid, at) for uid, at in (await session.execute(stmt, {"appids": list(openid_appids)})).all()]


async def stage(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A temporary table of this transaction's hits: (step, identity parts or user, epoch seconds)."""
    await session.execute(
        text(
            "CREATE TEMPORARY TABLE funnel_hits (step INTEGER NOT NULL, kind VARCHAR(16),"
            " namespace VARCHAR(64), value VARCHAR(128), user_id BIGINT, at_s BIGINT NOT NULL)"
        )
    )
    if rows:
        await session.execute(
            text(
                "INSERT INTO funnel_hits (step, kind, namespace, value, user_id, at_s)"
                " VALUES (:step, :kind, :namespace, :value, :user_id, :at_s)"
            ),
            rows,
        )


def _funnel_sql(kinds: Sequence[str]) -> str:
    """Each step's first hit after the previous one and within the window of step 0, per person."""
    parts = [
        "hits AS (SELECT h.step, COALESCE(h.user_id, i.user_id) AS uid, h.at_s FROM funnel_hits h"
        " LEFT JOIN identities i ON h.user_id IS NULL AND i.kind = h.kind"
        " AND i.namespace = h.namespace AND i.value = h.value)"
    ]
    for k, kind in enumerate(kinds):
        # SEEN happens once per person: the first appearance, wherever it falls.
        agg = "MIN(at_s)" if kind == "SEEN" else None
        src = (
            f"(SELECT uid, {agg} AS at_s FROM hits WHERE step = {k} AND uid IS NOT NULL GROUP BY uid)"
            if agg
            else f"(SELECT uid, at_s FROM hits WHERE step = {k} AND uid IS NOT NULL)"
        )
        parts.append(f"h{k} AS {src}")
    parts.append(
        "s0 AS (SELECT uid, MIN(at_s) AS t0 FROM h0 WHERE at_s >= :from_s AND at_s < :to_s GROUP BY uid)"
    )
    for k in range(1, len(kinds)):
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
