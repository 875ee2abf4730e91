"""The unified user: orders, cart, behaviour and interests over every channel identity."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.factories.identity import link
from tests.helpers import Gql

UNIFIED = """
query ($identity: IdentityInput!, $first: Int, $after: String, $status: OrderStatus) {
  user(identity: $identity) {
    id
    orders(first: $first, after: $after, status: $status) {
      totalCount pageInfo { hasNextPage endCursor } nodes { channel sourceId status placedAt }
    }
    cart { items { sku quantity channel } }
  }
}
"""
BEHAVIOR = """
query ($identity: IdentityInput!, $types: [String!], $channel: Channel) {
  user(identity: $identity) {
    behavior(types: $types, channel: $channel) { nodes { channel type properties } }
    interests { tag weight }
  }
}
"""
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"


async def _person(app: FastAPI, gql: Gql) -> tuple[dict[str, str], dict[str, str]]:
    """One person: a mini program openid and an APP account on one user."""
    settings = app.state.settings
    token = await operator_key(app, "operator")
    mp_id = openid(settings.mini_program_appid, "o-person")
    first = await link(
        gql, token, kind="OPENID", namespace=mp_id["namespace"], value="o-person", unionid="u-person"
    )
    await link(gql, token, kind="APP_USER_ID", value="U-person", user_id=first["user"]["id"])
    return mp_id, app_user("U-person")


async def test_unpaid_mini_program_order_shows_in_the_app(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, app_id = await _person(app, gql)
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [mp_order("m1", mp_id, order_id="MP-1", status="待支付")],
    )
    app_key = await service_key(app, "APP")
    user = (await gql(UNIFIED, {"identity": app_id}, token=app_key))["user"]
    assert [(o["channel"], o["sourceId"], o["status"]) for o in user["orders"]["nodes"]] == [
        ("MINI_PROGRAM", "MP-1", "PENDING_PAYMENT")
    ]


async def test_cart_latest_change_across_channels_wins(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, app_id = await _person(app, gql)
    mp_key, app_key = await service_key(app, "MINI_PROGRAM"), await service_key(app, "APP")
    await ingest(
        client,
        mp_key,
        "MINI_PROGRAM",
        [
            cart("k1", mp_id, sku="A", quantity=2, at="2026-11-20T10:00:00+08:00"),
            cart("k2", mp_id, sku="B", quantity=0, at="2026-11-20T12:00:00+08:00"),
            cart("k3", mp_id, sku="C", quantity=5, at="2026-11-20T09:00:00+08:00"),
        ],
    )
    await ingest(
        client,
        app_key,
        "APP",
        [
            cart("k4", app_id, sku="A", quantity=3, at="2026-11-20T11:00:00+08:00"),
            cart("k5", app_id, sku="B", quantity=1, at="2026-11-20T11:00:00+08:00"),
            cart("k6", app_id, sku="C", quantity=1, at="2026-11-20T08:00:00+08:00"),
        ],
    )
    items = (await gql(UNIFIED, {"identity": mp_id}, token=mp_key))["user"]["cart"]["items"]
    assert sorted((i["sku"], i["quantity"], i["channel"]) for i in items) == [
        ("A", 3, "APP"),
        ("C", 5, "MINI_PROGRAM"),
    ]


async def test_orders_page_newest_first_across_channels(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, app_id = await _person(app, gql)
    mp_key, app_key = await service_key(app, "MINI_PROGRAM"), await service_key(app, "APP")
    await ingest(
        client,
        mp_key,
        "MINI_PROGRAM",
        [
            mp_order(f"p{n}", mp_id, order_id=f"MP-{n}", at=f"2026-11-{n + 1:02d}T10:00:00+08:00")
            for n in range(0, 24, 2)
        ],
    )
    await ingest(
        client,
        app_key,
        "APP",
        [
            app_order(f"q{n}", app_id, order_no=f"A-{n}", at=f"2026-11-{n + 1:02d}T10:00:00+08:00")
            for n in range(1, 24, 2)
        ],
    )
    seen: list[str] = []
    after = None
    while True:
        orders = (await gql(UNIFIED, {"identity": app_id, "first": 5, "after": after}, token=app_key))[
            "user"
        ]["orders"]
        assert orders["totalCount"] == 24
        seen += [o["placedAt"] for o in orders["nodes"]]
        if not orders["pageInfo"]["hasNextPage"]:
            break
        after = orders["pageInfo"]["endCursor"]
    assert len(seen) == 24
    assert seen == sorted(seen, reverse=True)
    paid = (await gql(UNIFIED, {"identity": app_id, "status": "PAID"}, token=app_key))["user"]["orders"]
    assert paid["totalCount"] == 12
    assert {o["channel"] for o in paid["nodes"]} == {"APP"}


async def test_bad_cursor_is_a_clear_error(app: FastAPI, gql: Gql) -> None:
    _mp_id, app_id = await _person(app, gql)
    await gql.error(
        UNIFIED,
        {"identity": app_id, "after": "nonsense"},
        token=await operator_key(app, "viewer"),
        code="BAD_USER_INPUT",
    )


async def test_merge_shows_both_and_unmerge_splits_again(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    settings = app.state.settings
    mp_id = openid(settings.mini_program_appid, "o-split")
    app_id = app_user("U-split")
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [mp_order("s1", mp_id, order_id="MP-S")],
    )
    await ingest(client, await service_key(app, "APP"), "APP", [app_order("s2", app_id, order_no="A-S")])
    operator = await operator_key(app, "operator")
    mp_user = (await gql(UNIFIED, {"identity": mp_id}, token=operator))["user"]["id"]
    merged = await link(gql, operator, kind="APP_USER_ID", value="U-split", user_id=mp_user)
    both = (await gql(UNIFIED, {"identity": app_id}, token=operator))["user"]["orders"]
    assert both["totalCount"] == 2
    await gql(UNMERGE, {"id": merged["merge"]["id"]}, token=operator)
    alone = (await gql(UNIFIED, {"identity": app_id}, token=operator))["user"]["orders"]
    assert [o["sourceId"] for o in alone["nodes"]] == ["A-S"]


async def test_behavior_and_interests_span_channels(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    settings = app.state.settings
    token = await operator_key(app, "operator")
    mp_id = openid(settings.mini_program_appid, "o-mom")
    oa_id = openid(settings.official_account_appid, "o-mom-oa")
    first = await link(
        gql, token, kind="OPENID", namespace=mp_id["namespace"], value="o-mom", unionid="u-mom"
    )
    await link(gql, token, kind="OPENID", namespace=oa_id["namespace"], value="o-mom-oa", unionid="u-mom")
    await ingest(
        client,
        await service_key(app, "OFFICIAL_ACCOUNT"),
        "OFFICIAL_ACCOUNT",
        [event(f"e{n}", oa_id, name="article_read", properties={"tags": ["母婴知识"]}) for n in range(3)],
    )
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [
            event("e9", mp_id, name="reservation", properties={"service": "儿童摄影"}),
            event("e10", mp_id, name="page_view"),
        ],
    )
    user = (await gql(BEHAVIOR, {"identity": oa_id}, token=token))["user"]
    assert len(user["behavior"]["nodes"]) == 5
    weights = {i["tag"]: i["weight"] for i in user["interests"]}
    assert set(weights) == {"母婴知识", "儿童摄影"}
    assert max(weights.values()) == 1.0
    only = (
        await gql(
            BEHAVIOR, {"identity": oa_id, "types": ["reservation"], "channel": "MINI_PROGRAM"}, token=token
        )
    )["user"]["behavior"]["nodes"]
    assert only == [{"channel": "MINI_PROGRAM", "type": "reservation", "properties": {"service": "儿童摄影"}}]
    assert first["user"]["id"]


async def test_data_dictionary_is_served(app: FastAPI, gql: Gql) -> None:
    data = await gql("{ dataDictionary { version document } }", token=await operator_key(app, "viewer"))
    assert data["dataDictionary"]["version"] == app.state.dictionary.version
    assert "MINI_PROGRAM" in str(data["dataDictionary"]["document"])
