"""N+1 freedom: the statements for a page of users do not grow with the page or its nesting."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import cart, event, ingest, mp_order, openid
from tests.factories.entitlements import grant_membership, grant_role, set_consent
from tests.helpers import Gql
from tests.sql import count_statements

USERS = """
query ($first: Int!) {
  users(first: $first) {
    nodes {
      id phone identities { kind value }
      orders(first: 5) { totalCount nodes { sourceId status items { sku quantity } } }
      cart { items { sku quantity } }
      behavior(first: 5) { nodes { type } }
      interests { tag }
      preferences(first: 1) { sku }
      traits { paidOrders }
      journey { path }
      consents { purpose channel granted }
      allows(purpose: MARKETING, channel: APP)
      membership { tier points expiresAt }
      benefits { code }
      roles { role scope permissions }
      hasPermission(permission: "store.orders.manage", scope: "store:12")
    }
  }
}
"""


async def test_statements_are_the_same_for_1_10_and_100_users(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    appid = app.state.settings.mini_program_appid
    key = await service_key(app, "MINI_PROGRAM")
    for start in range(0, 100, 10):
        records = []
        for n in range(start, start + 10):
            who = openid(appid, f"o-n{n}")
            records += [
                mp_order(f"o{n}", who, order_id=f"MP-N{n}"),
                cart(f"c{n}", who, sku=f"S{n}", quantity=1),
                event(f"e{n}", who, name="article_read", properties={"tags": ["t"]}),
            ]
        assert (await ingest(client, key, "MINI_PROGRAM", records))["accepted"] == 30
    # Consents, memberships and roles for some of them (every 7th), set through the API.
    admin = await operator_key(app, "admin")
    ids = [u["id"] for u in (await gql(USERS, {"first": 100}, token=admin))["users"]["nodes"]]
    for user_id in ids[::7]:
        await set_consent(
            gql, key, "PUSH", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM", user_id=user_id
        )
        await grant_membership(gql, key, user_id=user_id, tier="GOLD", source="MINI_PROGRAM")
        await grant_role(gql, admin, user_id=user_id, role="store_order_manager", scope="store:12")
    token = await operator_key(app, "viewer")
    await gql(USERS, {"first": 1}, token=token)  # the key is looked up once, then remembered
    counts = []
    for size in (1, 10, 100):
        with count_statements(app) as statements:
            nodes = (await gql(USERS, {"first": size}, token=token))["users"]["nodes"]
        assert len(nodes) == size
        assert all(len(u["orders"]["nodes"]) == 1 and len(u["cart"]["items"]) == 1 for u in nodes)
        assert nodes[0]["membership"]["tier"] == "GOLD"
        assert nodes[0]["hasPermission"] is True
        assert nodes[0]["consents"] == [{"purpose": "PUSH", "channel": "MINI_PROGRAM", "granted": True}]
        assert all(u["journey"]["path"] == ["MINI_PROGRAM"] and u["traits"]["paidOrders"] == 0 for u in nodes)
        assert all(len(u["preferences"]) == 1 and u["preferences"][0]["sku"].startswith("S") for u in nodes)
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts
    # One statement per relation: the page and its count, identities, the channel relations, and
    # the permission center's consents, memberships, points and role grants; the portrait's
    # preferences (events, orders, cart records), traits and journey (spans, order figures and
    # the hub's sign-ins, read once for both).
    assert counts[0] <= 18, counts
