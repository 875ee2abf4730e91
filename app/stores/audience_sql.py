"""SQL for audience conditions: each channel leaf as (identity ref, count) rows of one store, each
hub leaf and the whole tree as a condition on `users.id` (app/services/audiences.py puts them together)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    union_all,
)

from app.db.channel_models import (
    ChannelCartItem,
    ChannelEvent,
    ChannelOrder,
    ChannelReservation,
    InterestTag,
)
from app.db.models import ConsentEntry, Identity, Membership, User

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FOLLOW_EVENTS = ("subscribe", "unsubscribe")
# User.preferences rounds scores to 6 places: a score shown as the threshold reaches it.
SCORE_SLACK = 5e-7
ACTIVE_USER = and_(User.merged_into_id.is_(None), User.erased_at.is_(None))
# The identity as channel stores name it (app/pii.py ref): KIND|namespace|stored value.
IDENTITY_REF = Identity.kind + literal("|") + Identity.namespace + literal("|") + Identity.value


@dataclass
class Binds:
    """Unique bind names for the text fragments of one statement."""

    dialect: str
    _n: Any = None

    def name(self) -> str:
        if self._n is None:
            self._n = count()
        return f"aud_{next(self._n)}"

    def json_has(self, column: str, key: str, value: str) -> ColumnElement[bool]:
        """`column`'s property `key` is `value` or a list holding it."""
        if not _KEY.match(key):
            return false()
        b = self.name()
        if self.dialect == "sqlite":
            sql = f"EXISTS (SELECT 1 FROM json_each({column}, '$.{key}') AS j WHERE j.value = :{b})"
        else:
            sql = (
                f"(CASE json_typeof({column}->'{key}') WHEN 'string' THEN {column}->>'{key}' = :{b} "
                f"WHEN 'array' THEN EXISTS (SELECT 1 FROM json_array_elements_text({column}->'{key}') "
                f"AS j(v) WHERE j.v = :{b}) ELSE false END)"
            )
        return text(sql).bindparams(**{b: value})  # type: ignore[return-value]

    def items_have(self, column: str, sku: str) -> ColumnElement[bool]:
        """An order's items (a JSON list of lines) name this SKU."""
        b = self.name()
        if self.dialect == "sqlite":
            sql = (
                f"EXISTS (SELECT 1 FROM json_each({column}) AS j WHERE json_extract(j.value, '$.sku') = :{b})"
            )
        else:
            sql = f"EXISTS (SELECT 1 FROM json_array_elements({column}) AS j(v) WHERE j.v->>'sku' = :{b})"
        return text(sql).bindparams(**{b: sku})  # type: ignore[return-value]


def _since(column: Any, now: datetime, days: int | None) -> ColumnElement[bool] | None:
    return None if days is None else column >= now - timedelta(days=days)


def _counted(ref: Any, table_filters: list[Any], refs: Sequence[str] | None) -> Select[Any]:
    conditions = [f for f in table_filters if f is not None]
    if refs is not None:
        conditions.append(ref.in_(list(refs)))
    return select(ref.label("ref"), func.count().label("n")).where(*conditions).group_by(ref)


def orders_rows(
    b: Binds,
    args: dict[str, Any],
    channels: Sequence[str],
    codes: list[int] | None,
    now: datetime,
    refs: Sequence[str] | None,
) -> Select[Any]:
    o = ChannelOrder
    filters = [
        o.channel.in_(channels),
        None if codes is None else o.status_code.in_(codes),
        None if args.get("sku") is None else b.items_have("ch_orders.items", args["sku"]),
        _since(o.placed_at, now, args.get("withinDays")),
    ]
    return _counted(o.identity_ref, filters, refs)


def behavior_rows(
    b: Binds, args: dict[str, Any], channels: Sequence[str], now: datetime, refs: Sequence[str] | None
) -> Select[Any]:
    e = ChannelEvent
    filters = [
        e.channel.in_(channels),
        e.type.in_(args["types"]),
        None if args.get("tag") is None else b.json_has("ch_events.properties", "tags", args["tag"]),
        _since(e.occurred_at, now, args.get("withinDays")),
    ]
    return _counted(e.identity_ref, filters, refs)


def reservations_rows(
    args: dict[str, Any],
    channels: Sequence[str],
    codes: list[int] | None,
    now: datetime,
    refs: Sequence[str] | None,
) -> Select[Any]:
    r = ChannelReservation
    filters = [
        r.channel.in_(channels),
        None if codes is None else r.status_code.in_(codes),
        None if args.get("service") is None else r.service == args["service"],
        _since(r.booked_at, now, args.get("withinDays")),
    ]
    return _counted(r.identity_ref, filters, refs)


def cart_rows(
    args: dict[str, Any], channels: Sequence[str], now: datetime, refs: Sequence[str] | None
) -> Select[Any]:
    c = ChannelCartItem
    older = args.get("olderThanDays")
    filters = [
        c.channel.in_(channels),
        c.quantity > 0,
        None if args.get("sku") is None else c.sku == args["sku"],
        None if older is None else c.updated_at <= now - timedelta(days=older),
    ]
    return _counted(c.identity_ref, filters, refs)


def interest_rows(
    tag: str,
    rules: dict[str, list[tuple[str, float]]],
    channels: Sequence[str],
    refs: Sequence[str] | None,
) -> Select[Any]:
    """Identities whose events (the kept counts) or reservations give this tag by the interest rules."""
    t, r = InterestTag, ChannelReservation
    held = [t.channel.in_(channels), t.tag == tag]
    if refs is not None:
        held.append(t.identity_ref.in_(list(refs)))
    # Every kept row counts at least one event; reading no count keeps the scan index-only, and
    # leaves the count out of the index so ingestion's increments can be heap-only updates.
    kept = cast("Select[Any]", select(t.identity_ref.label("ref"), literal(1).label("n")).where(*held))
    parts = [kept]
    if any(p == "service" for p, _ in rules.get("reservation", [])):
        parts.append(_counted(r.identity_ref, [r.channel.in_(channels), r.service == tag], refs))
    # No grouping here: from_refs sums a person's rows whatever identities and channels they come from.
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery()
    return select(both.c.ref, both.c.n)


def unfollowed_rows(channel: str, refs: Sequence[str] | None) -> Select[Any]:
    """Official-account identities whose latest subscribe/unsubscribe is an unsubscribe."""
    e = ChannelEvent
    later = ChannelEvent.__table__.alias("later")
    newer = (
        select(literal_column("1"))
        .select_from(later)
        .where(
            later.c.identity_ref == e.identity_ref,
            later.c.channel == channel,
            later.c.type == "subscribe",
            later.c.occurred_at > e.occurred_at,
        )
        .exists()
    )
    filters = [e.channel == channel, e.type == "unsubscribe", not_(newer)]
    return _counted(e.identity_ref, filters, refs)


# Hub leaves: conditions on users.id.


def from_refs(source: Any, min_count: int) -> ColumnElement[bool]:
    """The users whose identities' (ref, n) rows in `source` add up to at least `min_count`."""
    people = (
        select(Identity.user_id)
        .join(source, source.c.ref == IDENTITY_REF)
        .group_by(Identity.user_id)
        .having(func.sum(source.c.n) >= min_count)
    )
    return User.id.in_(people)


def from_scores(source: Any, min_score: float) -> ColumnElement[bool]:
    """The users with a (ref, w) row in `source` whose weights add up to at least `min_score`."""
    people = (
        select(Identity.user_id)
        .join(source, source.c.ref == IDENTITY_REF)
        .group_by(Identity.user_id)
        .having(func.sum(source.c.w) >= min_score - SCORE_SLACK)
    )
    return User.id.in_(people)


def has_identity(kind: str, namespace: str | None, unfollowed: Any | None) -> ColumnElement[bool]:
    stmt = select(Identity.user_id).where(Identity.kind == kind)
    if namespace is not None:
        stmt = stmt.where(Identity.namespace == namespace)
    if unfollowed is not None:
        stmt = stmt.where(IDENTITY_REF.not_in(select(unfollowed.c.ref)))
    return User.id.in_(stmt)


def in_tiers(tiers: Sequence[str], now: datetime) -> ColumnElement[bool]:
    m = Membership
    active = and_(m.ended_at.is_(None), or_(m.expires_at.is_(None), m.expires_at > now))
    return User.id.in_(select(m.user_id).where(m.tier.in_(list(tiers)), active))


def consent_granted(purpose: str, channels: Sequence[str]) -> ColumnElement[bool]:
    """The latest entry of one of these cells (purpose, channel; '' for no channel) grants."""
    c = ConsentEntry
    latest = (
        select(func.max(c.id))
        .where(c.purpose == purpose, c.channel.in_(list(channels)))
        .group_by(c.user_id, c.purpose, c.channel)
    )
    return User.id.in_(select(c.user_id).where(c.id.in_(latest), c.granted.is_(True)))
