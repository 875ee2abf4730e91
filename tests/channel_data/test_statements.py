"""N+1 freedom: the statements for a page of users do not grow with the page or its nesting."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import cart, event, ingest, mp_order, openid
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
    token = await operator_key(app, "viewer")
    await gql(USERS, {"first": 1}, token=token)  # the key is looked up once, then remembered
    counts = []
    for size in (1, 10, 100):
        with count_statements(app) as statements:
            nodes = (await gql(USERS, {"first": size}, token=token))["users"]["nodes"]
        assert len(nodes) == size
        assert all(len(u["orders"]["nodes"]) == 1 and len(u["cart"]["items"]) == 1 for u in nodes)
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0] <= 10, counts
