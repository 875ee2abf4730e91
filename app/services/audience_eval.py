"""Evaluating an audience condition: one SQL condition on `users.id` in the hub, whatever the tree.

Channel leaves (orders, behaviour, reservations, cart, interest, the official account's
unfollows) are (identity ref, count) rows of the channel stores. A store in the hub's database is
read in the same statement; a store in a database of its own answers its rows once per leaf, which
go into a temporary table of the hub session. Refs then meet the identity graph in SQL, so members
are whole persons (an absorbed user's identities belong to its survivor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    cast,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import appid_channels
from app.db.engine import Database
from app.db.models import Identity, User
from app.db.types import UTCDateTime
from app.domain import Channel, IdentityKind
from app.domain.entitlements import PER_CHANNEL, Purpose
from app.errors import InvalidInput
from app.ingest.dictionary import DataDictionary
from app.services.audience_conditions import Node
from app.settings import Settings
from app.stores import audience_portrait_sql as portrait_sql
from app.stores import audience_preference_sql as preference_sql
from app.stores import audience_sql as sql
from loaders.channel_data import InterestsByUserIdLoader
from loaders.identity import IdentitiesByUserIdLoader

TEMP = "audience_refs"
_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {TEMP} (leaf INTEGER NOT NULL, ref VARCHAR(220) NOT NULL, "
    "n BIGINT, w DOUBLE PRECISION, channel VARCHAR(24), at TIMESTAMP WITH TIME ZONE)"
)
_CHANNEL_LEAVES = frozenset({"orders", "behavior", "reservations", "cart", "interest"})
_INSERT_CHUNK = 5_000
_WEIGH_BATCH = 500


# A separate store's rows of one leaf: (ref, n) counts, (ref, w) scores or (ref, channel, at) firsts.
_TEMP = Table(
    TEMP,
    MetaData(),
    Column("leaf", Integer),
    Column("ref", String(220)),
    Column("n", BigInteger),
    Column("w", Float),
    Column("channel", String(24)),
    Column("at", UTCDateTime),
)


@dataclass
class Evaluation:
    """A compiled condition, valid while its hub session is open."""

    where: ColumnElement[bool]
    session: AsyncSession
    compiler: Compiler

    async def reach(self, channel: Channel, purpose: Purpose) -> dict[str, ColumnElement[bool]]:
        """Conditions on users for sending in `channel` for `purpose`: consent, identity, following."""
        consent = sql.consent_granted(purpose.value, [channel.value if purpose in PER_CHANNEL else ""])
        kind = IdentityKind.APP_USER_ID if channel is Channel.APP else IdentityKind.OPENID
        probe = Node("identity", "recipients", args={})
        held = await self.compiler.identity_of(probe, kind, channel.value, following=False)
        out = {"consent": consent, "reachable": held}
        if channel is Channel.OFFICIAL_ACCOUNT:
            out["following"] = await self.compiler.identity_of(probe, kind, channel.value, following=True)
        return out

    async def count(self, *conditions: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(self.members().where(*conditions).subquery())
        return int((await self.session.execute(stmt)).scalar_one())

    async def page_where(
        self, conditions: Sequence[ColumnElement[bool]], *, first: int, after_id: int | None
    ) -> list[int]:
        stmt = self.members().where(*conditions).order_by(User.id).limit(first)
        if after_id is not None:
            stmt = stmt.where(User.id > after_id)
        return list((await self.session.execute(stmt)).scalars())

    def members(self) -> Select[Any]:
        return select(User.id).where(sql.ACTIVE_USER, self.where)

    async def size(self) -> int:
        return int(
            (
                await self.session.execute(select(func.count()).select_from(self.members().subquery()))
            ).scalar_one()
        )

    async def page(self, *, first: int, after_id: int | None) -> list[int]:
        stmt = self.members().order_by(User.id).limit(first)
        if after_id is not None:
            stmt = stmt.where(User.id > after_id)
        return list((await self.session.execute(stmt)).scalars())

    async def among(self, user_ids: Sequence[int]) -> set[int]:
        stmt = self.members().where(User.id.in_(list(user_ids)))
        return set((await self.session.execute(stmt)).scalars())


class Compiler:
    """Turns one checked tree into a condition on users.id, reading separate stores as it goes."""

    def __init__(
        self,
        session: AsyncSession,
        db: Database,
        dictionary: DataDictionary,
        settings: Settings,
        now: datetime,
        only: Sequence[int] | None,
    ) -> None:
        self.session, self.db, self.dictionary, self.settings, self.now = (
            session,
            db,
            dictionary,
            settings,
            now,
        )
        self.only = only
        self.refs: list[str] | None = None
        self.leaves = 0
        self.temp_ready = False
        self.binds = sql.Binds(session.get_bind().dialect.name)

    async def compile(self, node: Node) -> ColumnElement[bool]:
        if self.only is not None and self.refs is None:
            stmt = select(sql.IDENTITY_REF).where(Identity.user_id.in_(list(self.only)))
            self.refs = list((await self.session.execute(stmt)).scalars())
        return await self._node(node)

    async def _node(self, node: Node) -> ColumnElement[bool]:
        if node.kind == "all":
            return and_(*[await self._node(c) for c in node.children])
        if node.kind == "any":
            return or_(*[await self._node(c) for c in node.children])
        if node.kind == "not":
            return not_(await self._node(node.children[0]))
        args = node.args or {}
        if node.kind in _CHANNEL_LEAVES:
            channel = args.get("channel")
            source = await self._source(node.kind, args, [Channel(channel)] if channel else list(Channel))
            held = sql.from_refs(source, int(args.get("minCount", 1)))
            if node.kind == "interest" and float(args.get("minWeight", 0.0)) > 0:
                return await self._weighed(held, args["tag"], float(args["minWeight"]))
            return held
        if node.kind == "traits":
            return await self._traits(args)
        if node.kind == "journey":
            return await self._journey(args)
        if node.kind == "preference":
            return await self._preference(args)
        if node.kind == "identity":
            return await self.identity_of(node, IdentityKind(args["kind"]), args.get("channel"))
        if node.kind == "membership":
            return sql.in_tiers(args["tiers"], self.now)
        purpose = Purpose(args["purpose"])
        channel = args.get("channel")
        if purpose not in PER_CHANNEL:
            return sql.consent_granted(purpose.value, [""])
        return sql.consent_granted(purpose.value, [channel] if channel else [c.value for c in Channel])

    async def identity_of(
        self, node: Node, kind: IdentityKind, channel: str | None, *, following: bool = True
    ) -> ColumnElement[bool]:
        """Holds an identity of this kind (of this channel; the official account's: still following)."""
        if channel is None:
            return sql.has_identity(kind.value, None, None)
        if kind is IdentityKind.APP_USER_ID:
            return sql.has_identity(kind.value, None, None) if channel == Channel.APP.value else false()
        if kind is not IdentityKind.OPENID:
            where = f"{node.path}.identity.channel"
            raise InvalidInput(
                f"{where}: a {kind.value} belongs to no one channel; omit channel", field=where
            )
        appid = {c: a for a, c in appid_channels(self.settings).items()}.get(Channel(channel))
        if appid is None:
            return false()
        unfollowed = None
        if channel == Channel.OFFICIAL_ACCOUNT.value and following:
            unfollowed = await self._source("unfollowed", {}, [Channel.OFFICIAL_ACCOUNT])
        return sql.has_identity(kind.value, appid, unfollowed)

    async def _traits(self, args: dict[str, Any]) -> ColumnElement[bool]:
        """Every figure set holds, each summed over the person's identities (User.traits)."""
        every = list(Channel)
        held: list[ColumnElement[bool]] = []
        if (cents := args.get("minLifetimeValueCents")) is not None:
            held.append(sql.from_refs(await self._source("paid_value", {}, every), int(cents)))
        if (paid := args.get("minPaidOrders")) is not None:
            held.append(sql.from_refs(await self._source("paid_orders", {}, every), int(paid)))
        if (days := args.get("lastOrderWithinDays")) is not None:
            recent = await self._source("paid_orders", {"withinDays": days}, every)
            held.append(sql.from_refs(recent, 1))
        return and_(*held)

    async def _journey(self, args: dict[str, Any]) -> ColumnElement[bool]:
        """The channels in order of first appearance begin with these (User.journey.path)."""
        prefix = list(args.get("pathStartsWith") or [])
        if (first := args.get("firstChannel")) is not None:
            if prefix and prefix[0] != first:
                return false()
            prefix = prefix or [first]
        firsts = await self._source("firsts", {}, list(Channel), ("ref", "channel", "at"))
        appids = {a: c.value for a, c in appid_channels(self.settings).items()}
        return portrait_sql.path_starts_with(firsts, appids, prefix)

    async def _preference(self, args: dict[str, Any]) -> ColumnElement[bool]:
        """A score for this SKU of at least minScore, as User.preferences scores it."""
        rows = await self._source("preference", args, list(Channel), ("ref", "w"))
        return sql.from_scores(rows, float(args.get("minScore") or 0.0))

    async def _weighed(self, held: ColumnElement[bool], tag: str, min_weight: float) -> ColumnElement[bool]:
        """Of the people who hold the tag at all (SQL), those whose weight reaches `min_weight`.

        The weight is relative to the person's strongest interest, with recent behaviour counting
        more (app/services/channel_data.py): it is weighed as User.interests weighs it, in batches.
        """
        stmt = select(User.id).where(sql.ACTIVE_USER, held)
        if self.only is not None:
            stmt = stmt.where(User.id.in_(list(self.only)))
        candidates = list((await self.session.execute(stmt)).scalars())
        identities = IdentitiesByUserIdLoader(self.db.read_sessions)
        weigh = InterestsByUserIdLoader(self.db, identities, self.dictionary)
        kept: list[dict[str, Any]] = []
        for i in range(0, len(candidates), _WEIGH_BATCH):
            batch = candidates[i : i + _WEIGH_BATCH]
            for uid, interests in zip(batch, await weigh.batch_load_fn(batch), strict=True):
                if any(x.tag == tag and x.weight >= min_weight for x in interests):
                    kept.append({"ref": str(uid), "n": 1})
        self.leaves += 1
        await self._keep(self.leaves, kept)
        return User.id.in_(select(cast(_TEMP.c.ref, BigInteger)).where(_TEMP.c.leaf == self.leaves))

    def _rows(self, kind: str, args: dict[str, Any], channels: list[str]) -> Select[Any]:
        refs = self.refs
        if kind == "orders":
            return sql.orders_rows(
                self.binds, args, channels, self._codes(args, booking=False), self.now, refs
            )
        if kind == "behavior":
            return sql.behavior_rows(self.binds, args, channels, self.now, refs)
        if kind == "reservations":
            return sql.reservations_rows(args, channels, self._codes(args, booking=True), self.now, refs)
        if kind == "cart":
            return sql.cart_rows(args, channels, self.now, refs)
        if kind == "paid_value":
            return portrait_sql.paid_value_rows(channels, self.dictionary.paid_codes(), refs)
        if kind == "paid_orders":
            paid = self.dictionary.paid_codes()
            return sql.orders_rows(self.binds, args, channels, paid, self.now, refs)
        if kind == "firsts":
            return portrait_sql.first_record_rows(channels, refs)
        if kind == "preference":
            return preference_sql.preference_rows(
                self.binds, args["sku"], self.dictionary, [Channel(c) for c in channels], self.now, refs
            )
        if kind == "interest":
            rules = self.dictionary.interest_rules
            return sql.interest_rows(args["tag"].strip(), rules, channels, refs)
        return sql.unfollowed_rows(channels[0], refs)

    def _codes(self, args: dict[str, Any], *, booking: bool) -> list[int] | None:
        names = args.get("statuses")
        if names is None:
            return None
        table = self.dictionary.reservation_status_names if booking else self.dictionary.status_names
        return [code for code, name in table.items() if name in names]

    async def _source(
        self,
        kind: str,
        args: dict[str, Any],
        channels: list[Channel],
        columns: tuple[str, ...] = ("ref", "n"),
    ) -> Any:
        """One leaf's rows (these columns) over every store that holds these channels, as one subquery."""
        self.leaves += 1
        leaf = self.leaves
        parts: list[Select[Any]] = []
        kept = False
        for store in self.db.stores:
            mine = [c.value for c in store.channels if c in channels]
            if not mine:
                continue
            if store.shares_hub:
                parts.append(self._rows(kind, args, mine))
                continue
            async with store.engines.read_sessions() as remote:
                hub_binds, self.binds = self.binds, sql.Binds(remote.get_bind().dialect.name)
                try:
                    rows = (await remote.execute(self._rows(kind, args, mine))).mappings().all()
                finally:
                    self.binds = hub_binds
            await self._keep(leaf, [{c: r[c] for c in columns} for r in rows])
            kept = True
        temp = [_TEMP.c[c] for c in columns]
        if kept:  # every separate store's rows of this leaf, read once
            parts.append(select(*temp).where(_TEMP.c.leaf == leaf))
        if not parts:
            return select(*temp).where(false()).subquery()
        return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()

    async def _keep(self, leaf: int, rows: list[dict[str, Any]]) -> None:
        """A separate store's rows of one leaf, into the hub session's temporary table."""
        if not self.temp_ready:
            await self.session.execute(text(_CREATE))
            await self.session.execute(_TEMP.delete())
            self.temp_ready = True
        for i in range(0, len(rows), _INSERT_CHUNK):
            await self.session.execute(
                insert(_TEMP), [{"leaf": leaf, **r} for r in rows[i : i + _INSERT_CHUNK]]
            )


@asynccontextmanager
async def evaluated(
    db: Database,
    dictionary: DataDictionary,
    settings: Settings,
    node: Node,
    *,
    now: datetime,
    only: Sequence[int] | None = None,
) -> AsyncIterator[Evaluation]:
    """The condition compiled in a hub read session, open while the caller reads its members."""
    async with db.read_sessions() as session:
        # The statement's estimated cost (identity refs meeting the graph on an expression) turns
        # JIT compiling on, which took longer than the query itself (bench/RESULTS.md). Reads run
        # in autocommit, so the setting is the connection's until reset below.
        no_jit = session.get_bind().dialect.name == "postgresql"
        if no_jit:
            await session.execute(text("SET jit = off"))
        compiler = Compiler(session, db, dictionary, settings, now, only)
        try:
            yield Evaluation(await compiler.compile(node), session, compiler)
        finally:
            if compiler.temp_ready:
                await session.execute(text(f"DROP TABLE IF EXISTS {TEMP}"))
            if no_jit:
                await session.execute(text("RESET jit"))
