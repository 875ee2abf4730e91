"""SQL for compiled reads: every relation a read needs, one statement per database, as JSON the
database builds (json_build_array/json_agg on PostgreSQL, json_array/json_group_array on SQLite).

Rows come back as the same records the per-relation stores return (built by their own row
functions), so the rules above them cannot tell which path read them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import orjson
from cachetools import LRUCache
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.cursors import Position
from app.db.types import UTCDateTime
from app.domain import Channel, IdentityKey, IdentityKind, IdentityRecord, UserRecord
from app.domain.channel_data import CartRow, EventRow, OrderRow, ReservationRow
from app.domain.entitlements import Cause, ConsentEntryRecord, MembershipRecord, Purpose, RoleGrantRecord
from app.stores import compiled_portrait as portrait
from app.stores import memberships as membership_store
from app.stores import roles as role_store
from app.stores.compiled_portrait import PortraitQuery, PortraitRows
from app.stores.sign_ins import SignInSpan


@dataclass(frozen=True)
class OrderQuery:
    """One `orders` selection: its filters and the rows to keep per identity."""

    channels: tuple[Channel, ...]
    status_code: int | None
    before: Position | None
    per_ref: int


@dataclass(frozen=True)
class EventQuery:
    channels: tuple[Channel, ...]
    types: tuple[str, ...] | None
    before: Position | None
    per_ref: int


@dataclass(frozen=True)
class ChannelQueries:
    """What one channel-store database is asked for."""

    orders: tuple[OrderQuery, ...] = ()
    events: tuple[EventQuery, ...] = ()
    cart: tuple[Channel, ...] = ()
    # Reservations as the interests weigh them: the newest `booked_per_ref` of each identity.
    booked: tuple[Channel, ...] = ()
    booked_per_ref: int = 0
    portrait: PortraitQuery | None = None

    def __bool__(self) -> bool:
        return bool(self.orders or self.events or self.cart or self.booked or self.portrait)


@dataclass
class ChannelRows:
    orders: list[tuple[list[OrderRow], dict[str, int]]] = field(default_factory=list)
    events: list[list[EventRow]] = field(default_factory=list)
    cart: list[CartRow] = field(default_factory=list)
    booked: list[ReservationRow] = field(default_factory=list)
    portrait: PortraitRows | None = None


@dataclass(frozen=True)
class HubQuery:
    """The root (ids, an identity key, or a page of active users) and the relations to read."""

    ids: tuple[int, ...] = ()
    key: IdentityKey | None = None
    page: tuple[int, int | None] | None = None  # (rows, after id)
    identities: bool = False
    consents: bool = False
    memberships: bool = False
    points: bool = False
    roles: bool = False
    sign_ins: bool = False  # their spans per identity and channel, for the portrait


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


_PARAM = re.compile(r"(?<!:):(\w+)")
_JSON = "json:"  # marks a column holding JSON text (SQLite)


class _Sql:
    """The two dialects' JSON functions."""

    def __init__(self, postgres: bool) -> None:
        self.pg = postgres

    def obj(self, parts: Sequence[tuple[str, str]]) -> str:
        fn = "json_build_object" if self.pg else "json_object"
        pairs = ", ".join(f"'{k}', {v}" for k, v in parts)
        return f"{fn}({pairs})"

    def agg(self, cols: Sequence[str], source: str, order: str) -> str:
        """A JSON array of row arrays, in `order` ("": a single row); on SQLite ordered below the
        aggregate (it keeps a subquery's order), on PostgreSQL an ordered ARRAY (no aggregate)."""
        return _agg(self.pg, tuple(cols), source, order)

    def ids(self, source: str) -> str:
        fn = "json_agg" if self.pg else "json_group_array"
        return f"(SELECT {fn}(id) {source})"

    def json_col(self, col: str) -> str:
        return f"{_JSON}{col}"


@lru_cache(maxsize=1024)
def _agg(pg: bool, cols: tuple[str, ...], source: str, order: str) -> str:
    """_Sql.agg's text, made once per shape (sources name parameters, never values)."""
    plain = [c.removeprefix(_JSON) for c in cols]
    ordered = f" ORDER BY {order}" if order else ""
    if pg:
        # An ARRAY of the rows' JSON, not json_agg: no aggregate to set up per part (each Agg
        # node cost ~10k instructions to start); `[]` when there is no row, where json_agg gave null.
        return f"array_to_json(ARRAY(SELECT json_build_array({', '.join(plain)}) {source}{ordered}))"
    named = ", ".join(f"{c} AS q{n}" for n, c in enumerate(plain))
    rows = f"(SELECT {named} {source}{ordered})"
    # A JSON column keeps its JSON type only inside the expression that parses it.
    inner = ", ".join(f"json(q{n})" if c.startswith(_JSON) else f"q{n}" for n, c in enumerate(cols))
    return f"(SELECT json_group_array(json_array({inner})) FROM {rows})"


def _at(raw: str | None) -> datetime | None:
    return None if raw is None else _when(raw)


def _when(raw: str) -> datetime:
    at = _iso(raw)
    tz = at.tzinfo
    if tz is UTC:  # PostgreSQL in UTC: the common case, already what the stores return
        return at
    return at.replace(tzinfo=UTC) if tz is None else at.astimezone(UTC)


_iso = datetime.fromisoformat
_CHANNELS = {c.value: c for c in Channel}  # Channel(value) costs a metaclass call per row
_PURPOSES = {p.value: p for p in Purpose}
_CAUSES = {c.value: c for c in Cause}
_KINDS = {k.value: k for k in IdentityKind}


def _identity(r: list[Any], keyring: Any) -> IdentityRecord:
    """As the identity store's `identity_record`, from a row of the statement's JSON."""
    kind, namespace, value, sealed = r[2], r[3], r[4], r[5]
    return IdentityRecord(
        id=r[0], user_id=r[1], kind=_KINDS[kind], namespace=namespace,
        value=value if sealed is None else pii.opened(keyring, value, sealed),
        verified=bool(r[6]), linked_at=_when(r[7]), rule=r[8], source=r[9], actor=r[10],
        ref=pii.ref(kind, namespace, value),
    )  # fmt: skip


# The merge chain carries each user's row, so the user at its end is not looked up again.
_CHAIN = """chain(start_id, id, next_id, depth, created_at, version, erased_at) AS (
  SELECT u.id, u.id, u.merged_into_id, 0, u.created_at, u.data_version, u.erased_at FROM users u
  WHERE {start} AND u.erased_at IS NULL
  UNION ALL
  SELECT c.start_id, u.id, u.merged_into_id, c.depth + 1, u.created_at, u.data_version, u.erased_at
  FROM chain c JOIN users u ON u.id = c.next_id WHERE c.depth < 64),
target(start_id, id, created_at, version) AS (
  SELECT start_id, id, created_at, CASE WHEN depth = 0 THEN version END FROM chain
  WHERE next_id IS NULL AND erased_at IS NULL)"""
_CLUSTER = """cluster(root_id, id) AS (
  SELECT u.id, u.id FROM users u WHERE u.id {of_target}
  UNION ALL
  SELECT cl.root_id, u.id FROM cluster cl JOIN users u ON u.merged_into_id = cl.id)"""
_KEY = "kind = :kind AND namespace = :ns AND value = :value"
_ACTIVE = "merged_into_id IS NULL AND erased_at IS NULL"
_REF = "i.kind || '|' || i.namespace || '|' || i.value"
_IDENTITY_COLS: tuple[str, ...] = ("id", "user_id", "kind", "namespace", "value", "sealed", "verified")
_IDENTITY_COLS += ("linked_at", "rule", "source", "actor")


def _refs_of_target(sql: _Sql, of_target: str, ctes: list[str]) -> str:
    """The identities' refs, as the right side of a condition on `identity_ref`: on PostgreSQL one
    array built once (each use an index scan for its elements, no join per use)."""
    where = f"FROM identities i WHERE i.user_id {of_target}"
    if not sql.pg:
        return f"IN (SELECT {_REF} {where})"
    ctes.append(f"refs(a) AS (SELECT ARRAY(SELECT {_REF} {where}))")
    return "= ANY((SELECT a FROM refs)::text[])"


def _hub_parts(
    sql: _Sql, q: HubQuery, params: dict[str, Any], ctes: list[str], channel: bool, chain: bool = True
) -> tuple[list[tuple[str, str]], str, str]:
    """The hub's parts, their CTEs added to `ctes`; the identities' refs (see _refs_of_target)
    when a channel store on the hub (`channel`) or the sign-ins need them; and the statement's
    FROM ("" but for one id on PostgreSQL: the target's row, see below). Without `chain` (one id
    on PostgreSQL, see read_hub) the target is the id's own row, merged or not."""
    starts = []
    if q.key is not None:
        starts.append(f"SELECT user_id FROM identities WHERE {_KEY}")
    if len(q.ids) == 1:
        # One id as a plain value, not a list: PostgreSQL then estimates the generic plan as it
        # does a custom one and keeps it after five executions, instead of planning every time.
        starts.append("SELECT id FROM users WHERE id = :id")
        params["id"] = q.ids[0]
    elif q.ids:
        starts.append("SELECT id FROM users WHERE id IN :ids")
        params["ids"] = list(q.ids)
    if q.page is not None:
        after = " AND id > :after" if q.page[1] is not None else ""
        # The page's size in the text (a few sizes, each its own statement): with it bound,
        # PostgreSQL would plan the statement again on every execution.
        rows = int(q.page[0])
        starts.append(
            f"SELECT id FROM (SELECT id FROM users WHERE {_ACTIVE}{after} ORDER BY id LIMIT {rows}) p"
        )
        params.update(after=q.page[1])
    # One start (an id, or an identity key: unique) ends in at most one user, compared as a value.
    single = len(starts) == 1 and q.page is None and len(q.ids) <= 1
    if single and q.ids:
        start, of_target = "u.id = :id", "= (SELECT id FROM target)"
    else:
        start = f"u.id IN ({' UNION '.join(starts) or 'SELECT id FROM users WHERE 1 = 0'})"
        of_target = "= (SELECT id FROM target)" if single else "IN (SELECT id FROM target)"
    if chain:
        ctes.append(_CHAIN.format(start=start))
    if q.memberships or q.points or q.roles:
        ctes.append(_CLUSTER.format(of_target=of_target))
    user = ["start_id", "id", "created_at", "version"]
    tail = ""
    identities = ""  # the identities' part when read with their refs
    if single and q.ids and sql.pg:
        # One id: the statement reads FROM the target's row (none when there is no such user:
        # read_hub then takes every part as empty), so each part compares with its id, not with
        # a subquery on the CTE of its own; the refs are one array beside it, aggregated with
        # the identities' part when it is asked for (one read of the identities for both).
        of_target, refs, tail, where = "= tg.id", "", " FROM target tg", ""
        users = ", ".join(f"tg.{c}" for c in user)
        if not chain:  # as the chain's start, with where it was merged into
            tail, where = " FROM users tg", " WHERE tg.id = :id AND tg.erased_at IS NULL"
            users = "tg.id, tg.id, tg.created_at, tg.data_version, tg.merged_into_id"
        if channel or q.sign_ins:
            both = [f"array_agg({_REF}) AS a"]
            if q.identities:
                identities = "rf.ids"
                row = ", ".join(f"i.{c}" for c in _IDENTITY_COLS)
                both.append(f"json_agg(json_build_array({row}) ORDER BY i.linked_at, i.id) AS ids")
            tail += f", LATERAL (SELECT {', '.join(both)} FROM identities i WHERE i.user_id = tg.id) rf"
            refs = "= ANY(rf.a)"
        tail += where
        parts = [("users", f"json_build_array(json_build_array({users}))")]
    elif single and sql.pg:  # at most one row: no aggregate to set up
        refs = _refs_of_target(sql, of_target, ctes) if channel or q.sign_ins else ""
        parts = [("users", f"(SELECT json_build_array(json_build_array({', '.join(user)})) FROM target)")]
    else:
        refs = _refs_of_target(sql, of_target, ctes) if channel or q.sign_ins else ""
        parts = [("users", sql.agg(user, "FROM target", "start_id"))]
    if q.key is not None:
        parts.append(("owner", f"(SELECT min(user_id) FROM identities WHERE {_KEY})"))
    if q.page is not None:
        parts.append(("total", f"(SELECT count(*) FROM users WHERE {_ACTIVE})"))
        page_ids = f"FROM users WHERE {_ACTIVE}{after} AND id IN (SELECT id FROM target)"
        parts.append(("page", sql.ids(page_ids)))
    if q.identities:
        source = f"FROM identities WHERE user_id {of_target}"
        parts.append(("identities", identities or sql.agg(_IDENTITY_COLS, source, "user_id, linked_at, id")))
    if q.consents:
        cols = ["id", "user_id", "purpose", "channel", "granted", "source_channel", "policy_version"]
        cols += ["effective_at", "actor", "cause", "merge_id"]
        cell = "user_id, purpose, channel"
        if sql.pg:
            # Each cell's newest entry, by DISTINCT ON over the cell index read backwards (no
            # sort); the cells come newest last, so read_hub reverses them.
            back = "user_id DESC, purpose DESC, channel DESC"
            source = (
                f"FROM (SELECT DISTINCT ON ({cell}) * FROM consent_entries WHERE user_id {of_target} "
                f"ORDER BY {back}, id DESC) ce"
            )
            # For one user user_id is a constant: ordering by it again would plan a sort.
            parts.append(
                ("consents", sql.agg(cols, source, "purpose DESC, channel DESC" if single else back))
            )
        else:
            latest = f"SELECT max(id) FROM consent_entries WHERE user_id {of_target} GROUP BY {cell}"
            source = f"FROM consent_entries WHERE id IN ({latest})"
            parts.append(("consents", sql.agg(cols, source, "purpose, channel" if single else cell)))
    if q.memberships:
        cols = ["cl.root_id", "m.id", "m.user_id", "m.tier", "m.source_channel", "m.since", "m.expires_at"]
        cols += ["m.granted_by"]
        source = "FROM cluster cl JOIN memberships m ON m.user_id = cl.id WHERE m.ended_at IS NULL"
        parts.append(("memberships", sql.agg(cols, source, "cl.root_id, m.id")))
    if q.points:
        inner = (
            "FROM (SELECT cl.root_id AS root_id, COALESCE(SUM(p.delta), 0) AS total FROM cluster cl "
            "JOIN points_entries p ON p.user_id = cl.id GROUP BY cl.root_id) pts"
        )
        parts.append(("points", sql.agg(["root_id", "total"], inner, "root_id")))
    if q.roles:
        cols = ["cl.root_id", "g.id", "g.user_id", "g.role", "g.scope", "g.granted_at", "g.granted_by"]
        source = "FROM cluster cl JOIN role_grants g ON g.user_id = cl.id WHERE g.revoked_at IS NULL"
        parts.append(("roles", sql.agg(cols, source, "cl.root_id, g.granted_at, g.id")))
    if q.sign_ins:
        parts.append(portrait.sign_in_part(sql, refs))
    return parts, refs, tail


def _channel_parts(
    sql: _Sql, q: ChannelQueries, refs: str, params: dict[str, Any], ctes: list[str]
) -> list[tuple[str, str]]:
    """A channel store's parts, their CTEs added to `ctes`; `refs`: the right side of a condition
    on `identity_ref` (`IN :refs`, or the hub's identities: _refs_of_target)."""
    parts: list[tuple[str, str]] = []

    def where(n: str, channels: Sequence[Channel], before: Position | None, at: str) -> str:
        params[f"{n}_ch"] = [c.value for c in channels]
        cond = f"identity_ref {refs} AND channel IN :{n}_ch"
        if before is not None:
            params.update({f"{n}_at": before[0], f"{n}_bc": before[1], f"{n}_bi": before[2]})
            cond += (
                f" AND ({at} < :{n}_at OR ({at} = :{n}_at AND (channel < :{n}_bc"
                f" OR (channel = :{n}_bc AND id < :{n}_bi))))"
            )
        return cond

    for n, o in enumerate(q.orders):
        key = f"o{n}"
        if not o.channels:  # none of this database's channels is asked for
            parts += [(key, "NULL"), (f"{key}c", "NULL")]
            continue
        cond = where(key, o.channels, o.before, "placed_at")
        status = ""
        if o.status_code is not None:
            params[f"{key}_st"] = o.status_code
            status = f" AND status_code = :{key}_st"
        params[f"{key}_n"] = o.per_ref
        cols = ["id", "channel", "order_id", "identity_ref", "status_code", "total_cents", "currency"]
        cols += [sql.json_col("items"), "placed_at", "updated_at"]
        newest = "PARTITION BY identity_ref ORDER BY placed_at DESC, channel DESC, id DESC"
        if o.before is None:  # the page and the counts cover the same rows: read them once
            plain = [c.removeprefix(_JSON) for c in cols]
            # One window for both (row_number ignores the frame): one pass over the sorted rows.
            window = (
                f"SELECT {', '.join(plain)}, row_number() OVER w AS rank, count(*) OVER w AS n "
                f"FROM ch_orders WHERE {cond}{status} WINDOW w AS ({newest} "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
            )
            if sql.pg and o.per_ref >= 1:
                # Each ref and its count on its first row only (always on the page; _channel_rows
                # carries the ref on): one part, no CTE, less JSON; in the window's own order
                # (rank's), so the rows come out of it with no sort.
                page = f"FROM ({window}) r WHERE rank <= :{key}_n"
                order = "identity_ref, placed_at DESC, channel DESC, id DESC"
                first = [
                    c if c != "identity_ref" else "CASE WHEN rank = 1 THEN identity_ref END" for c in cols
                ]
                parts.append((key, sql.agg([*first, "CASE WHEN rank = 1 THEN n END"], page, order)))
                continue
            if sql.pg:  # read twice: a CTE could not see the target's refs (`rf`, _hub_parts)
                rows = f"({window}) r"
            else:
                ctes.append(f"{key}r AS MATERIALIZED ({window})")
                rows = f"{key}r"
            parts.append((key, sql.agg(cols, f"FROM {rows} WHERE rank <= :{key}_n", "identity_ref, rank")))
            counted = f"FROM {rows} WHERE rank = 1"
            parts.append((f"{key}c", sql.agg(["identity_ref", "n"], counted, "identity_ref")))
            continue
        ranked = (
            f"FROM (SELECT o.*, row_number() OVER ({newest}) AS rank FROM ch_orders o WHERE {cond}{status}) r"
        )
        ranked += f" WHERE rank <= :{key}_n"
        parts.append((key, sql.agg(cols, ranked, "identity_ref, rank")))
        count_cond = where(f"{key}c", o.channels, None, "placed_at")
        counted = (
            "FROM (SELECT identity_ref AS ref, count(*) AS n FROM ch_orders "
            f"WHERE {count_cond}{status} GROUP BY identity_ref) c"
        )
        parts.append((f"{key}c", sql.agg(["ref", "n"], counted, "ref")))
    for n, e in enumerate(q.events):
        key = f"e{n}"
        if not e.channels:
            parts.append((key, "NULL"))
            continue
        cond = where(key, e.channels, e.before, "occurred_at")
        if e.types:
            params[f"{key}_ty"] = list(e.types)
            cond += f" AND type IN :{key}_ty"
        params[f"{key}_n"] = e.per_ref
        ranked = (
            "FROM (SELECT e.*, row_number() OVER (PARTITION BY identity_ref ORDER BY occurred_at DESC, "
            f"channel DESC, id DESC) AS rank FROM ch_events e WHERE {cond}) r WHERE rank <= :{key}_n"
        )
        cols = ["id", "channel", "identity_ref", "type", "occurred_at", sql.json_col("properties")]
        parts.append((key, sql.agg(cols, ranked, "identity_ref, rank")))
    if q.booked:
        cond = where("bk", q.booked, None, "booked_at")
        params["bk_n"] = q.booked_per_ref
        ranked = (
            "FROM (SELECT b.*, row_number() OVER (PARTITION BY identity_ref ORDER BY booked_at DESC, "
            f"channel DESC, id DESC) AS rank FROM ch_reservations b WHERE {cond}) r WHERE rank <= :bk_n"
        )
        cols = ["id", "channel", "reservation_id", "identity_ref", "service", "status_code"]
        cols += ["starts_at", "booked_at", "updated_at"]
        parts.append(("bk", sql.agg(cols, ranked, "identity_ref, rank")))
    if q.cart:
        cond = where("cart", q.cart, None, "updated_at")
        cols = ["channel", "identity_ref", "sku", "quantity", "updated_at"]
        parts.append(("cart", sql.agg(cols, f"FROM ch_cart_items WHERE {cond}", "identity_ref, id")))
    if q.portrait is not None:
        parts += portrait.parts(sql, q.portrait, refs, params)
    return parts


# A statement's text depends only on the shape of what is read (never on values): each distinct
# text is parsed into a TextClause once, with its bound parameters typed by name.
_statements: LRUCache[str, tuple[TextClause, frozenset[str]]] = LRUCache(maxsize=256)


def _statement(statement: str, params: dict[str, Any]) -> tuple[TextClause, frozenset[str]]:
    found = _statements.get(statement)
    if found is None:
        used = frozenset(_PARAM.findall(statement))
        binds: list[Any] = []
        for name in sorted(used):
            value = params[name]
            if isinstance(value, list):
                binds.append(bindparam(name, expanding=True))
            elif isinstance(value, datetime):
                binds.append(bindparam(name, type_=UTCDateTime()))
        stmt = text(statement)
        found = _statements[statement] = (stmt.bindparams(*binds) if binds else stmt, used)
    return found


_IN_LIST = re.compile(r"\bIN :(\w+)")
_dollar: LRUCache[str, tuple[str, tuple[str, ...]]] = LRUCache(maxsize=256)


def _numbered(statement: str) -> tuple[str, tuple[str, ...]]:
    """PostgreSQL's own form of a statement: `= ANY($n)` for a list (one text whatever its length,
    so the driver prepares it once), `$n` for a value; and the names in their order."""
    found = _dollar.get(statement)
    if found is None:
        order: list[str] = []

        def number(m: re.Match[str]) -> str:
            if m.group(1) not in order:
                order.append(m.group(1))
            return f"${order.index(m.group(1)) + 1}"

        found = _dollar[statement] = (
            _PARAM.sub(number, _IN_LIST.sub(r"= ANY(:\1)", statement)),
            tuple(order),
        )
    return found


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


async def _run(target: Target, statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if target.pg:  # the driver's text as is: nothing compiled per request
        sql, names = _numbered(statement)
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
        stmt, used = _statement(statement, params)
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
    for r in found.get("identities") or []:
        rec = _identity(r, keyring)
        out.identities[rec.user_id].append(rec)
    consents = found.get("consents") or []
    for r in reversed(consents) if target.pg else consents:
        # As the consent store's own rows give them (`consents._record`), its enums by value.
        out.consents[r[1]].append(
            ConsentEntryRecord(
                id=r[0],
                user_id=r[1],
                purpose=_PURPOSES[r[2]],
                channel=_CHANNELS[r[3]] if r[3] else None,
                granted=None if r[4] is None else bool(r[4]),
                source_channel=_CHANNELS[r[5]],
                policy_version=r[6],
                effective_at=_when(r[7]),
                actor=r[8],
                cause=_CAUSES[r[9]],
                merge_id=r[10],
            )  # fmt: skip
        )
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
    sql = _Sql(target.pg)
    params: dict[str, Any] = {}
    if q.key is not None:
        params.update(
            kind=q.key.kind.value,
            ns=q.key.namespace,
            value=pii.stored_value(target.keyring, q.key.kind, q.key.value),
        )
    ctes: list[str] = []
    parts, refs, tail = _hub_parts(sql, q, params, ctes, bool(here), chain)
    if here:
        parts += _channel_parts(sql, here, refs, params, ctes)
    found = await _run(target, _select(sql, ctes, parts, recursive=True, tail=tail), params)
    if found is None:  # no row FROM the target: no user, so every part is empty
        found = dict.fromkeys(k for k, _ in parts)
    return found


async def read_channel(target: Target, q: ChannelQueries, refs: Sequence[str]) -> ChannelRows:
    """A channel-store database of its own: the identities' refs are bound."""
    if not refs:
        return ChannelRows(orders=[([], {}) for _ in q.orders], events=[[] for _ in q.events])
    sql = _Sql(target.pg)
    params: dict[str, Any] = {"refs": list(refs)}
    ctes: list[str] = []
    parts = _channel_parts(sql, q, "IN :refs", params, ctes)
    return _channel_rows(q, await _run(target, _select(sql, ctes, parts), params) or {})


def _select(
    sql: _Sql, ctes: list[str], parts: list[tuple[str, str]], recursive: bool = False, tail: str = ""
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
        if counted is _ON_ROWS:  # each ref and its count on its first row only (_channel_parts)
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
        rows = [
            OrderRow(
                id=r[0],
                channel=_CHANNELS[r[1]],
                order_id=r[2],
                identity_ref=r[3],
                status_code=r[4],
                total_cents=r[5],
                currency=r[6],
                items=r[7],
                placed_at=_when(r[8]),
                updated_at=_when(r[9]),
            )  # fmt: skip
            for r in raw
        ]
        out.orders.append((rows, counts))
    for n in range(len(q.events)):
        out.events.append(
            [
                EventRow(
                    id=r[0],
                    channel=_CHANNELS[r[1]],
                    identity_ref=r[2],
                    type=r[3],
                    occurred_at=_when(r[4]),
                    properties=r[5],
                )  # fmt: skip
                for r in found[f"e{n}"] or []
            ]
        )
    if q.cart:
        out.cart = [CartRow(_CHANNELS[r[0]], r[1], r[2], r[3], _when(r[4])) for r in found.get("cart") or []]
    if q.booked:
        out.booked = [
            ReservationRow(
                id=r[0],
                channel=_CHANNELS[r[1]],
                reservation_id=r[2],
                identity_ref=r[3],
                service=r[4],
                status_code=r[5],
                starts_at=_at(r[6]),
                booked_at=_when(r[7]),
                updated_at=_when(r[8]),
            )  # fmt: skip
            for r in found.get("bk") or []
        ]
    if q.portrait is not None:
        out.portrait = portrait.rows(q.portrait, found, _when, _at)
    return out
