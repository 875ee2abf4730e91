"""The compiled reads' statements: what a read asks of one database (the query shapes) and the
text of the one statement that answers it, in either dialect (app/stores/compiled.py runs it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cachetools import LRUCache
from sqlalchemy import TextClause, bindparam, text

from app.cursors import Position
from app.db.types import UTCDateTime
from app.domain import Channel, IdentityKey
from app.stores import compiled_portrait as portrait
from app.stores.compiled_portrait import PortraitQuery


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

    def shape(self) -> tuple[object, ...]:
        """What the statement's text depends on: everything but the root's values (root_params)."""
        page = None if self.page is None else (self.page[0], self.page[1] is None)
        return (
            min(len(self.ids), 2), self.key is None, page, self.identities, self.consents,
            self.memberships, self.points, self.roles, self.sign_ins,
        )  # fmt: skip


_PARAM = re.compile(r"(?<!:):(\w+)")
_JSON = "json:"  # marks a column holding JSON text (SQLite)


class Sql:
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
    """Sql.agg's text, made once per shape (sources name parameters, never values)."""
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


def _refs_of_target(sql: Sql, of_target: str, ctes: list[str]) -> str:
    """The identities' refs, as the right side of a condition on `identity_ref`: on PostgreSQL one
    array built once (each use an index scan for its elements, no join per use)."""
    where = f"FROM identities i WHERE i.user_id {of_target}"
    if not sql.pg:
        return f"IN (SELECT {_REF} {where})"
    ctes.append(f"refs(a) AS (SELECT ARRAY(SELECT {_REF} {where}))")
    return "= ANY((SELECT a FROM refs)::text[])"


def root_params(q: HubQuery) -> dict[str, Any]:
    """The root's own values: the only parameters of the hub's statement that its text does not
    depend on (an identity key's are added by the caller, which seals its value)."""
    if len(q.ids) == 1:
        found: dict[str, Any] = {"id": q.ids[0]}
    elif q.ids:
        found = {"ids": list(q.ids)}
    else:
        found = {}
    if q.page is not None:
        found["after"] = q.page[1]
    return found


def hub_parts(
    sql: Sql, q: HubQuery, params: dict[str, Any], ctes: list[str], channel: bool, chain: bool = True
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
    elif q.ids:
        starts.append("SELECT id FROM users WHERE id IN :ids")
    if q.page is not None:
        after = " AND id > :after" if q.page[1] is not None else ""
        # The page's size in the text (a few sizes, each its own statement): with it bound,
        # PostgreSQL would plan the statement again on every execution.
        rows = int(q.page[0])
        starts.append(
            f"SELECT id FROM (SELECT id FROM users WHERE {_ACTIVE}{after} ORDER BY id LIMIT {rows}) p"
        )
    params.update(root_params(q))
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


def channel_parts(
    sql: Sql, q: ChannelQueries, refs: str, params: dict[str, Any], ctes: list[str]
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
            if sql.pg:  # read twice: a CTE could not see the target's refs (`rf`, hub_parts)
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


def clause(statement: str, params: dict[str, Any]) -> tuple[TextClause, frozenset[str]]:
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


def numbered(statement: str) -> tuple[str, tuple[str, ...]]:
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
