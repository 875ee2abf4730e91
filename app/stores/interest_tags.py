"""The kept interest tags of each identity's events: written with the events, read by audiences."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.channel_models import ChannelEvent, InterestTag
from app.stores.bulk import Columns, insert_rows, is_postgres


class TagRules(Protocol):
    """The interests' rules (the data dictionary, passed in: a store knows no ingestion module)."""

    def interest_tags(self, event_type: str, properties: dict[str, Any]) -> list[tuple[str, float]]: ...


REBUILD_CHUNK = 20_000
_COLUMNS: Columns = (("channel", "text"), ("identity_ref", "text"), ("tag", "text"), ("events", "int"))
_ADD = (
    "ON CONFLICT (channel, identity_ref, tag) DO UPDATE "
    "SET events = ch_interest_tags.events + excluded.events"
)


def tag_counts(events: Iterable[tuple[str, str, str, Any]], dictionary: TagRules) -> list[dict[str, Any]]:
    """(channel, ref, type, properties) events as (channel, ref, tag) counts, by the interests' rules."""
    counts: dict[tuple[str, str, str], int] = {}
    for channel, ref, event_type, properties in events:
        if not isinstance(properties, dict):
            continue
        for tag, _weight in dictionary.interest_tags(event_type, properties):
            key = (channel, ref, tag)
            counts[key] = counts.get(key, 0) + 1
    return [
        {"channel": c, "identity_ref": r, "tag": t, "events": n} for (c, r, t), n in sorted(counts.items())
    ]


def _upsert(dialect: str) -> Any:
    """Add to a held count, or start one; rows come sorted so concurrent batches lock in one order."""
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(InterestTag)
    return ins.on_conflict_do_update(
        index_elements=["channel", "identity_ref", "tag"],
        set_={"events": InterestTag.events + ins.excluded.events},
    )


async def add_tags(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Count one batch's events' tags in (the batch's own transaction)."""
    if not rows:
        return
    if is_postgres(session):  # one statement for the batch, as the events themselves are written
        await insert_rows(session, "ch_interest_tags", _COLUMNS, rows, _ADD)
        return
    await session.execute(_upsert(session.get_bind().dialect.name), list(rows))


async def rebuild(conn: AsyncConnection, dictionary: TagRules) -> int:
    """Recount every event's tags from scratch (a store written without ingestion); rows written."""
    await conn.execute(delete(InterestTag))
    e = ChannelEvent
    stmt = select(e.id, e.channel, e.identity_ref, e.type, e.properties).order_by(e.id)
    counts: dict[tuple[str, str, str], int] = {}
    last = 0
    while True:
        rows = (await conn.execute(stmt.where(e.id > last).limit(REBUILD_CHUNK))).all()
        if not rows:
            break
        last = rows[-1][0]
        for row in tag_counts(((r[1], r[2], r[3], r[4]) for r in rows), dictionary):
            key = (row["channel"], row["identity_ref"], row["tag"])
            counts[key] = counts.get(key, 0) + row["events"]
    out = [{"channel": c, "identity_ref": r, "tag": t, "events": n} for (c, r, t), n in counts.items()]
    for i in range(0, len(out), REBUILD_CHUNK):
        await conn.execute(insert(InterestTag), out[i : i + REBUILD_CHUNK])
    return len(out)
