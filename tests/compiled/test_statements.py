"""A compiled unified user costs one statement per store database, whatever it selects, and the
switch turns compilation off; the audit of unmasked reads is written as the resolvers write it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.models import AuditEntry
from graphql_schema.compiled.hook import STATS
from tests.compiled.conftest import Pair, World, build_world
from tests.helpers import Gql
from tests.sql import count_statements

USER = """
query ($id: ID!) {
  user(id: $id) {
    id createdAt phone identities { kind value namespace channel verified linkedAt linkedBy }
    orders(first: 20) { totalCount pageInfo { hasNextPage endCursor }
      nodes { id channel sourceId status statusCode totalCents currency placedAt updatedAt
        items { sku name quantity unitPriceCents } } }
    paid: orders(status: PAID, channel: MINI_PROGRAM) { totalCount }
    cart { items { sku quantity channel updatedAt } }
    consents { purpose channel granted sourceChannel policyVersion updatedAt }
    allows(purpose: PUSH, channel: MINI_PROGRAM)
    membership { tier since expiresAt sourceChannel points }
    benefits { code name } points
    roles { role scope permissions grantedAt }
    hasPermission(permission: "store.orders.manage", scope: "store:12")
    behavior(first: 2) { pageInfo { hasNextPage } nodes { type properties } }
    interests { tag weight }
  }
}
"""
BY_IDENTITY = (
    "query ($i: IdentityInput!) { user(identity: $i) { id orders { totalCount } cart { items { sku } } } }"
)
ME = "{ me { id phone orders { totalCount } consents { purpose } } }"
PORTRAIT = USER.removesuffix("  }\n}\n") + (
    "    preferences(first: 10) { sku name views favorites cartAdds purchases score channels lastAt }\n"
    "    traits { lifetimeValueCents paidOrders ordersByChannel { channel count } lastSeenAt }\n"
    "    journey { path channels { channel firstSeenAt lastSeenAt firstOrderAt } }\n  }\n}\n"
)
PAGE_PORTRAIT = (
    "{ users(first: 3) { nodes { id preferences { sku score } traits { paidOrders } journey { path } } } }"
)
PAGE = "{ users(first: 3) { totalCount nodes { id identities { kind } orders { totalCount } points } } }"


async def _statements(pair: Pair, query: str, variables: dict[str, object], token: str | None) -> int:
    # With a listener on the engine (count_statements), PostgreSQL's compiled statement runs through
    # SQLAlchemy instead of its own asyncpg connections (loaders/compiled.py): the same text.
    app = pair.on
    await Gql(pair.on_client)(query, variables, token=token)  # the key is looked up once, then remembered
    before = STATS["compiled"]
    with count_statements(app) as statements:
        await Gql(pair.on_client)(query, variables, token=token)
    assert STATS["compiled"] == before + 1, "answered by the resolvers"
    return len(statements)


@pytest.mark.parametrize("app_store_url", ["shared", "split"], indirect=True)
async def test_one_statement_per_store_database(pair: Pair, app_store_url: str | None) -> None:
    world: World = await build_world(pair.on, pair.on_client)
    databases = 1 if app_store_url is None else 2
    admin, app_key = world.callers["admin"], world.callers["app"]
    assert await _statements(pair, USER, {"id": world.full}, admin) == databases
    assert await _statements(pair, USER, {"id": world.absorbed}, app_key) == databases
    assert await _statements(pair, BY_IDENTITY, {"i": world.identities["phone"]}, app_key) == databases
    assert await _statements(pair, ME, {}, world.callers["self"]) == databases
    assert await _statements(pair, PAGE, {}, admin) == databases
    # The portrait is read in the same statements.
    assert await _statements(pair, PORTRAIT, {"id": world.full}, admin) == databases
    assert await _statements(pair, PAGE_PORTRAIT, {}, admin) == databases
    # With the switch off, the same query field by field: a statement per relation.
    before = dict(STATS)
    with count_statements(pair.off) as statements:
        await Gql(pair.off_client)(USER, {"id": world.full}, token=admin)
    assert len(statements) > 5 * databases
    assert dict(STATS) == before  # not even looked at


async def test_unmasked_reads_are_audited_once_per_request_either_way(pair: Pair) -> None:
    world = await build_world(pair.on, pair.on_client)
    reader = world.callers["pii"]
    query = "query ($id: ID!) { user(id: $id) { phone identities { value } orders { totalCount } } }"

    async def entries() -> list[tuple[object, ...]]:
        """(user, fields, requests) of the pii.read entries."""
        async with pair.on.state.db.read_sessions() as session:
            stmt = select(AuditEntry.target_user_id, AuditEntry.details, AuditEntry.trace_id)
            rows = (await session.execute(stmt.where(AuditEntry.action == "pii.read"))).all()
        keys = {(uid, str(details)) for uid, details, _ in rows}
        return sorted(
            (uid, details, sum(1 for r in rows if (r[0], str(r[1])) == (uid, details)))
            for uid, details in keys
        )

    on = await Gql(pair.on_client)(query, {"id": world.full}, token=reader)
    compiled = await entries()
    off = await Gql(pair.off_client)(query, {"id": world.full}, token=reader)
    assert on == off
    assert on["user"]["phone"] == "+8613800138000"
    shown = str({"fields": ["identities", "phone"]})
    assert compiled == [(int(world.full), shown, 1)]
    assert await entries() == [(int(world.full), shown, 2)]
