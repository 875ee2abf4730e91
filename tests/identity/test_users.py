"""Reading users: by id, by identity, pages of users, and SQL that does not grow with the page."""

from __future__ import annotations

from fastapi import FastAPI

from app.demo import load_demo
from tests.factories.auth import operator_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.sql import count_statements

USERS = """
query ($first: Int!, $after: String) {
  users(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id phone createdAt identities { kind namespace value channel linkedBy } }
  }
}
"""
BY_PHONE = """
{
  user(identity: {kind: PHONE, value: "+8613800000001"}) {
    id identities { kind namespace value linkedBy }
    orders { totalCount nodes { channel status } }
    cart { items { sku quantity channel } }
    interests { tag }
    consents { purpose channel granted sourceChannel }
    appMarketing: allows(purpose: MARKETING, channel: APP)
    membership { tier points sourceChannel }
  }
}
"""
STAFF = """
{
  user(identity: {kind: APP_USER_ID, value: "S-0001"}) {
    roles { role scope }
    hasPermission(permission: "store.orders.manage", scope: "store:12")
  }
}
"""


async def test_users_pages_by_id(app: FastAPI, gql: Gql) -> None:
    operator = await operator_key(app, "operator")
    ids = [await new_user(gql, operator, phone=f"+86138001381{n:02d}") for n in range(5)]
    viewer = await operator_key(app, "viewer")
    page = (await gql(USERS, {"first": 3}, token=viewer))["users"]
    assert page["totalCount"] == 5
    assert [u["id"] for u in page["nodes"]] == ids[:3]
    assert page["pageInfo"] == {"hasNextPage": True, "endCursor": ids[2]}
    rest = (await gql(USERS, {"first": 3, "after": ids[2]}, token=viewer))["users"]
    assert [u["id"] for u in rest["nodes"]] == ids[3:]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_statements_do_not_grow_with_the_page(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    for n in range(30):
        user_id = await new_user(gql, token, phone=f"+86138002382{n:02d}")
        await link(gql, token, kind="APP_USER_ID", value=f"A-N{n}", user_id=user_id)
    counts = []
    for size in (1, 10, 30):
        with count_statements(app) as statements:
            page = (await gql(USERS, {"first": size}, token=token))["users"]
        assert len(page["nodes"]) == size
        assert all(len(u["identities"]) == 2 for u in page["nodes"])
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts


async def test_demo_data_answers_the_readme_query(app: FastAPI, gql: Gql) -> None:
    loaded = await load_demo(app.state.db, if_empty=True, settings=app.state.settings)
    assert loaded == 37
    assert await load_demo(app.state.db, if_empty=True, settings=app.state.settings) == 0
    token = await operator_key(app, "admin", "pii_reader")
    user = (await gql(BY_PHONE, token=token))["user"]
    kinds = {(i["kind"], i["namespace"]) for i in user["identities"]}
    s = app.state.settings
    assert {
        ("PHONE", None),
        ("UNIONID", None),
        ("APP_USER_ID", None),
        ("OPENID", s.mini_program_appid),
        ("OPENID", s.official_account_appid),
    } <= kinds
    assert {o["channel"] for o in user["orders"]["nodes"]} == {"MINI_PROGRAM", "APP"}
    assert user["cart"]["items"] == [{"sku": "SKU-0-2", "quantity": 3, "channel": "APP"}]
    assert {i["tag"] for i in user["interests"]} == {"美食推荐", "包间预订"}
    # Marketing granted everywhere, then withdrawn in the official account: withdrawn everywhere.
    assert user["appMarketing"] is False
    assert {(c["purpose"], c["channel"], c["granted"]) for c in user["consents"]} >= {
        ("MARKETING", "APP", False),
        ("PUSH", "MINI_PROGRAM", True),
        ("LOCATION", None, True),
    }
    assert user["membership"] == {"tier": "GOLD", "points": 100, "sourceChannel": "MINI_PROGRAM"}
    staff = (await gql(STAFF, token=token))["user"]
    assert staff["hasPermission"] is True
    assert {(r["role"], r["scope"]) for r in staff["roles"]} == {
        ("store_order_manager", "store:12"),
        ("customer_service", None),
    }
    merged = (await gql(USERS, {"first": 100}, token=token))["users"]
    assert merged["totalCount"] == 37
