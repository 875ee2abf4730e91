"""Compiled reads run: one statement per database (its text from app/stores/compiled_sql.py), its
JSON read back as the same records the per-relation stores return (built by their own row
functions), so the rules above them cannot tell which path read them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.domain import Channel, IdentityKind, IdentityRecord, UserRecord
from app.domain.channel_data import CartRow, EventRow, OrderRow, ReservationRow
from app.domain.entitlements import Cause, ConsentEntryRecord, MembershipRecord, Purpose, RoleGrantRecord
from app.stores import compiled_portrait as portrait
from app.stores import memberships as membership_store
from app.stores import roles as role_store
from app.stores.compiled_portrait import PortraitRows
from app.stores.compiled_rows import decoder, when
from app.stores.compiled_sql import (
    ChannelQueries,
    HubQuery,
    Sql,
    channel_parts,
    clause,
    hub_parts,
    numbered,
    root_params,
)
from app.stores.sign_ins import SignInSpan


@dataclass
class ChannelRows:
    orders: list[tuple[list[OrderRow], dict[str, int]]] = field(default_factory=list)
    events: list[list[EventRow]] = field(default_factory=list)
    cart: list[CartRow] = field(default_factory=list)
    booked: list[ReservationRow] = field(default_factory=list)
    portrait: PortraitRows | None = None
    # An order's `placed_at` as the statement wrote it, by the row's id, where that text is the one
    # `datetime.isoformat()` gives (the direct answers use it: formatting a time costs ~0.7 µs).
    placed: dict[int, str] = field(default_factory=dict)


@dataclass
class HubRows:
    users: dict[int, UserRecord] = field(default_factory=dict)  # asked id -> active user
    page: list[UserRecord] = field(default_factory=list)
    total: int = 0
    owner: int | None = None  # who holds the identity key asked for
    identities: dict[int, list[IdentityRecord]] = field(default_factory=lambda: defaultdict(list))
    consents: dict[int, list[ConsentEntryRecord]] = field(default_factory=lambda: defaultdict(list))
    memberships: dict[int, list[MembershipRecord]] = field(default_factory=lambda: defaultdict(list))
    points: dict[int, int] = field(default_factory=dict)
    roles: dict[int, list[RoleGrantRecord]] = field(default_factory=lambda: defaultdict(list))
    channel: ChannelRows | None = None  # a channel store on the hub's own database
    sign_ins: list[SignInSpan] = field(default_factory=list)


def _at(raw: str | None) -> datetime | None:
    return None if raw is None else _when(raw)


_when = when
_CHANNELS = {c.value: c for c in Channel}  # Channel(value) costs a metaclass call per row
_PURPOSES = {p.value: p for p in Purpose}
_CAUSES = {c.value: c for c in Cause}
_KINDS = {k.value: k for k in IdentityKind}
_ENUMS = {"CH": _CHANNELS, "PURPOSES": _PURPOSES, "CAUSES": _CAUSES, "KINDS": _KINDS}

# As the identity store's `identity_record`, from the rows of the statement's JSON.
_identities = decoder(
    IdentityRecord,
    [
        ("id", "r[0]"), ("user_id", "r[1]"), ("kind", "KINDS[r[2]]"), ("namespace", "r[3]"),
        ("value", "r[4] if r[5] is None else OPENED(keyring, r[4], r[5])"), ("verified", "bool(r[6])"),
        ("linked_at", "@r[7]"), ("rule", "r[8]"), ("source", "r[9]"), ("actor", "r[10]"),
        ("ref", "REF(r[2], r[3], r[4])"),
    ],
    {**_ENUMS, "OPENED": pii.opened, "REF": pii.ref},
    args=", keyring",
)  # fmt: skip
# As the consent store's own rows give them (`consents._record`), its enums by value.
_consents = decoder(
    ConsentEntryRecord,
    [
        ("id", "r[0]"), ("user_id", "r[1]"), ("purpose", "PURPOSES[r[2]]"),
        ("channel", "CH[r[3]] if r[3] else None"), ("granted", "None if r[4] is None else bool(r[4])"),
        ("source_channel", "CH[r[5]]"), ("policy_version", "r[6]"), ("effective_at", "@r[7]"),
        ("actor", "r[8]"), ("cause", "CAUSES[r[9]]"), ("merge_id", "r[10]"),
    ],
    _ENUMS,
)  # fmt: skip
_orders = decoder(
    OrderRow,
    [
        ("id", "r[0]"), ("channel", "CH[r[1]]"), ("order_id", "r[2]"), ("identity_ref", "r[3]"),
        ("status_code", "r[4]"), ("total_cents", "r[5]"), ("currency", "r[6]"), ("items", "r[7]"),
        ("placed_at", "@r[8]"), ("updated_at", "@r[9]"),
    ],
    _ENUMS,
)  # fmt: skip
_events = decoder(
    EventRow,
    [
        ("id", "r[0]"), ("channel", "CH[r[1]]"), ("identity_ref", "r[2]"), ("type", "r[3]"),
        ("occurred_at", "@r[4]"), ("properties", "r[5]"),
    ],
    _ENUMS,
)  # fmt: skip
_cart = decoder(
    CartRow,
    [
        ("channel", "CH[r[0]]"), ("identity_ref", "r[1]"), ("sku", "r[2]"), ("quantity", "r[3]"),
        ("updated_at", "@r[4]"),
    ],
    _ENUMS,
)  # fmt: skip
_booked = decoder(
    ReservationRow,
    [
        ("id", "r[0]"), ("channel", "CH[r[1]]"), ("reservation_id", "r[2]"), ("identity_ref", "r[3]"),
        ("service", "r[4]"), ("status_code", "r[5]"), ("starts_at", "@?r[6]"), ("booked_at", "@r[7]"),
        ("updated_at", "@r[8]"),
    ],
    _ENUMS,
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where a compiled statement runs: a read session, or on PostgreSQL a connection of asyncpg's
    own (app/db/direct.py), with the keyring the database's sessions carry."""

    keyring: Any
    pg: bool
    session: AsyncSession | None = None
    driver: Any = None  # app/db/direct.py's DirectReads

    @staticmethod
    def of(session: AsyncSession) -> Target:
        pg = session.get_bind().dialect.name == "postgresql"
        return Target(keyring=pii.keyring_of(session), pg=pg, session=session)


@dataclass(frozen=True, slots=True)
class Statement:
    """One shape's statement, written once: its text, the parameters the shape itself gives (the
    channels, page sizes and cursors asked for) and, on PostgreSQL, the driver's numbered text."""

    text: str
    fixed: dict[str, Any]
    numbered: tuple[str, tuple[str, ...]] | None
    parts: tuple[str, ...]  # the names of its parts (the keys of its JSON object)


def _statement(
    sql: Sql, ctes: list[str], parts: list[tuple[str, str]], fixed: dict[str, Any], **kw: Any
) -> Statement:
    text = _select(sql, ctes, parts, **kw)
    return Statement(text, fixed, numbered(text) if sql.pg else None, tuple(k for k, _ in parts))


# Statements by shape: (dialect, the hub query's shape, chain, the channel queries) -> Statement.
# The channel queries are compared by identity (the loaders keep one per plan and store), and held
# in the key so that their id is not reused while the entry lives.
_statements: dict[tuple[Any, ...], tuple[Any, Statement]] = {}
_STATEMENTS = 512  # shapes kept; past it, the memo starts again (cursors make shapes of their own)


def _kept(key: tuple[Any, ...], of: Any) -> Statement | None:
    found = _statements.get(key)
    return found[1] if found is not None and found[0] is of else None


def _keep(key: tuple[Any, ...], of: Any, statement: Statement) -> None:
    if len(_statements) >= _STATEMENTS:
        _statements.clear()
    _statements[key] = (of, statement)


async def _run(target: Target, statement: Statement, params: dict[str, Any]) -> dict[str, Any] | None:
    if target.pg:  # the driver's text as is: nothing compiled per request
        assert statement.numbered is not None
        sql, names = statement.numbered
        args = tuple(params[n] for n in names)
        if target.driver is not None:
            raw = await target.driver.fetchval(sql, *args)  # a connection taken for the statement
        else:
            assert target.session is not None
            conn = await target.session.connection()  # Core: the rows are JSON text
            raw = (await conn.exec_driver_sql(sql, args)).scalar_one()
    else:
        assert target.session is not None
        conn = await target.session.connection()
        stmt, used = clause(statement.text, params)
        raw = (await conn.execute(stmt, {k: v for k, v in params.items() if k in used})).scalar_one()
    return None if raw is None else orjson.loads(raw)


async def read_hub(target: Target, q: HubQuery, here: ChannelQueries | None = None) -> HubRows:
    """The root users and their hub relations; `here`: a channel store sharing the hub, read in the
    same statement with the identities' refs joined in SQL."""
    keyring = target.keyring
    # One id on PostgreSQL: first as a user not merged away (no merge chain to set up); the
    # statement with the chain only when that user turns out to be merged (its row says so).
    unchained = target.pg and len(q.ids) == 1 and q.key is None and q.page is None
    unchained = unchained and not (q.memberships or q.points or q.roles)
    found = await _hub_found(target, q, here, chain=not unchained)
    if unchained and found["users"] and found["users"][0][4] is not None:
        found = await _hub_found(target, q, here, chain=True)
    out = HubRows()
    for r in found["users"] or []:  # start id, id, created_at, version (, merged into)
        out.users[r[0]] = UserRecord(id=r[1], created_at=_when(r[2]), version=r[3])
    out.owner = found.get("owner")
    if q.page is not None:
        ids = sorted(found["page"] or [])
        out.page = [UserRecord(id=out.users[i].id, created_at=out.users[i].created_at) for i in ids]
        out.total = int(found["total"])
    for rec in _identities(found.get("identities") or (), keyring):
        out.identities[rec.user_id].append(rec)
    consents = found.get("consents") or []
    for entry in _consents(reversed(consents) if target.pg else consents):
        out.consents[entry.user_id].append(entry)
    for r in found.get("memberships") or []:
        m2 = SimpleNamespace(
            id=r[1], user_id=r[2], tier=r[3], source_channel=r[4], since=_when(r[5]), expires_at=_at(r[6]),
            granted_by=r[7],
        )  # fmt: skip
        out.memberships[r[0]].append(membership_store._record(m2))
    for root_id, total in found.get("points") or []:
        out.points[root_id] = int(total)
    for r in found.get("roles") or []:
        g = SimpleNamespace(
            id=r[1], user_id=r[2], role=r[3], scope=r[4], granted_at=_when(r[5]), granted_by=r[6]
        )
        out.roles[r[0]].append(role_store._record(g))
    if q.sign_ins:
        out.sign_ins = portrait.sign_in_rows(found, _when)
    if here:
        out.channel = _channel_rows(here, found)
    return out


async def _hub_found(target: Target, q: HubQuery, here: ChannelQueries | None, chain: bool) -> dict[str, Any]:
    """read_hub's statement run: its parts' JSON by name."""
    key = (target.pg, q.shape(), chain, id(here))
    statement = _kept(key, here)
    if statement is None:
        sql = Sql(target.pg)
        ctes: list[str] = []
        fixed: dict[str, Any] = {}
        parts, refs, tail = hub_parts(sql, q, fixed, ctes, bool(here), chain)
        if here:
            parts += channel_parts(sql, here, refs, fixed, ctes)
        for name in root_params(q):
            del fixed[name]
        statement = _statement(sql, ctes, parts, fixed, recursive=True, tail=tail)
        _keep(key, here, statement)
    params = {**statement.fixed, **root_params(q)}
    if q.key is not None:
        params.update(
            kind=q.key.kind.value,
            ns=q.key.namespace,
            value=pii.stored_value(target.keyring, q.key.kind, q.key.value),
        )
    found = await _run(target, statement, params)
    if found is None:  # no row FROM the target: no user, so every part is empty
        found = dict.fromkeys(statement.parts)
    return found


async def read_channel(target: Target, q: ChannelQueries, refs: Sequence[str]) -> ChannelRows:
    """A channel-store database of its own: the identities' refs are bound."""
    if not refs:
        return ChannelRows(orders=[([], {}) for _ in q.orders], events=[[] for _ in q.events])
    key = (target.pg, None, None, id(q))
    statement = _kept(key, q)
    if statement is None:
        sql = Sql(target.pg)
        ctes: list[str] = []
        fixed: dict[str, Any] = {}
        statement = _statement(sql, ctes, channel_parts(sql, q, "IN :refs", fixed, ctes), fixed)
        _keep(key, q, statement)
    return _channel_rows(q, await _run(target, statement, {**statement.fixed, "refs": list(refs)}) or {})


def _select(
    sql: Sql, ctes: list[str], parts: list[tuple[str, str]], recursive: bool = False, tail: str = ""
) -> str:
    """The one statement: its CTEs, then one JSON object of the parts (as text on PostgreSQL)."""
    with_ = f"WITH {'RECURSIVE ' if recursive else ''}{', '.join(ctes)}\n" if ctes else ""
    return f"{with_}SELECT {sql.obj(parts)}{'::text' if sql.pg else ''}{tail}"


_ON_ROWS: Any = object()  # an order part's counts are on its rows


def _channel_rows(q: ChannelQueries, found: dict[str, Any]) -> ChannelRows:
    out = ChannelRows()
    for n in range(len(q.orders)):
        raw = found[f"o{n}"] or []
        counted = found.get(f"o{n}c", _ON_ROWS)
        if counted is _ON_ROWS:  # each ref and its count on its first row only (channel_parts)
            counts: dict[str, int] = {}
            ref = None
            for r in raw:
                if r[10] is None:
                    r[3] = ref
                else:
                    ref = r[3]
                    counts[ref] = int(r[10])
        else:
            counts = {ref: int(c) for ref, c in counted or []}
        rows = _orders(raw)
        placed = out.placed
        for o, r in zip(rows, raw, strict=True):
            t = r[8]  # the serializer's own text when PostgreSQL wrote a UTC time with 0 or 6 digits
            if (
                (len(t) == 25 or (len(t) == 32 and t[19] == "." and t[20:26] != "000000"))
                and t[10] == "T" and t[4] == t[7] == "-" and t[13] == t[16] == ":" and t.endswith("+00:00")
            ):  # fmt: skip
                placed[id(o)] = t
        out.orders.append((rows, counts))
    for n in range(len(q.events)):
        out.events.append(_events(found[f"e{n}"] or ()))
    if q.cart:
        out.cart = _cart(found.get("cart") or ())
    if q.booked:
        out.booked = _booked(found.get("bk") or ())
    if q.portrait is not None:
        out.portrait = portrait.rows(q.portrait, found, _when, _at)
    return out
