"""The portrait: product preferences, traits and journeys over every identity of a person."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.factories.identity import link
from tests.helpers import Gql

PORTRAIT = """
query ($identity: IdentityInput!, $first: Int) {
  user(identity: $identity) {
    id
    preferences(first: $first) { sku name views favorites cartAdds purchases score channels lastAt }
    traits {
      lifetimeValueCents paidOrders averageOrderCents firstOrderAt lastOrderAt
      ordersByChannel { channel count } lastSeenAt
    }
    journey { path channels { channel firstSeenAt lastSeenAt firstOrderAt } }
  }
}
"""
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"


def _by_sku(user: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["sku"]: p for p in user["preferences"]}


async def test_preferences_merge_channels_by_the_dictionary_sku_fields(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    settings = app.state.settings
    token = await operator_key(app, "operator")
    mp_id = openid(settings.mini_program_appid, "o-pref")
    first = await link(gql, token, kind="OPENID", namespace=mp_id["namespace"], value="o-pref")
    await link(gql, token, kind="APP_USER_ID", value="U-pref", user_id=first["user"]["id"])
    app_id = app_user("U-pref")
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [
            # goodsId is the mini program's own field; `sku` holds for every channel.
            event("v1", mp_id, name="page_view", properties={"goodsId": "A1", "name": "拿铁"}),
            event("v2", mp_id, name="product_view", properties={"sku": "B2"}, at="2026-10-21T10:00:00+08:00"),
            event("v3", mp_id, name="click", properties={"product_id": "X"}),  # the APP's field only
            event("v4", mp_id, name="article_read", properties={"sku": "A1"}),  # not a view
            cart("c1", mp_id, sku="A1", quantity=1, at="2026-11-20T10:01:00+08:00"),
            cart("c2", mp_id, sku="A1", quantity=3, at="2026-11-20T10:02:00+08:00"),
            cart("c3", mp_id, sku="A1", quantity=2, at="2026-11-20T10:03:00+08:00"),  # fell: no add
            mp_order("o1", mp_id, order_id="MP-1", status="已支付"),
            mp_order("o2", mp_id, order_id="MP-2", status="已取消"),
            mp_order("o3", mp_id, order_id="MP-3", status="待支付"),
        ],
    )
    await ingest(
        client,
        await service_key(app, "APP"),
        "APP",
        [
            event(
                "f1",
                app_id,
                name="favorite",
                properties={"product_id": "A1", "name": "冰拿铁"},
                at="2026-11-21T10:00:00+08:00",
            ),
            event("f2", app_id, name="page_view", properties={"goodsId": "Y"}),  # the mini program's only
        ],
    )
    user = (await gql(PORTRAIT, {"identity": app_id}, token=token))["user"]
    prefs = _by_sku(user)
    assert set(prefs) == {"A1", "B2"}
    a1 = prefs["A1"]
    assert (a1["views"], a1["favorites"], a1["cartAdds"], a1["purchases"]) == (1, 1, 2, 1)
    assert a1["channels"] == ["APP", "MINI_PROGRAM"]
    assert a1["name"] == "冰拿铁"  # the latest any channel gave
    assert [p["sku"] for p in user["preferences"]] == ["A1", "B2"]
    b2 = prefs["B2"]
    assert (b2["views"], b2["channels"], b2["name"]) == (1, ["MINI_PROGRAM"], None)
    assert a1["score"] > b2["score"]
    only = (await gql(PORTRAIT, {"identity": app_id, "first": 1}, token=token))["user"]["preferences"]
    assert [p["sku"] for p in only] == ["A1"]


async def test_decay_halves_a_score_every_30_days(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    mp_id = openid(app.state.settings.mini_program_appid, "o-decay")
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [
            event("d1", mp_id, name="page_view", properties={"sku": "NEW"}, at="2026-11-20T10:00:00+08:00"),
            event("d2", mp_id, name="page_view", properties={"sku": "OLD"}, at="2026-10-21T10:00:00+08:00"),
            event("d3", mp_id, name="favorite", properties={"sku": "FAV"}, at="2026-11-20T10:00:00+08:00"),
        ],
    )
    token = await operator_key(app, "viewer")
    prefs = _by_sku((await gql(PORTRAIT, {"identity": mp_id}, token=token))["user"])
    assert prefs["NEW"]["score"] / prefs["OLD"]["score"] == pytest.approx(2.0, rel=1e-4)
    assert prefs["FAV"]["score"] / prefs["NEW"]["score"] == pytest.approx(3.0, rel=1e-4)


async def test_traits_and_journey_are_exact_for_merged_and_unmerged_persons(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    settings = app.state.settings
    operator = await operator_key(app, "operator")
    oa_id = openid(settings.official_account_appid, "o-j-oa")
    mp_id = openid(settings.mini_program_appid, "o-j")
    app_id = app_user("U-j")
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [
            mp_order(
                "j1", mp_id, order_id="MP-J1", status="已支付", amount="100元", at="2026-11-10T10:00:00+08:00"
            ),
            mp_order(
                "j2", mp_id, order_id="MP-J2", status="已取消", amount="999元", at="2026-11-09T10:00:00+08:00"
            ),
            event("j3", mp_id, name="page_view", properties={"sku": "A"}, at="2026-11-12T10:00:00+08:00"),
        ],
    )
    await ingest(
        client,
        await service_key(app, "APP"),
        "APP",
        [app_order("j4", app_id, order_no="A-J", status=3, total_fen=5000, at="2026-11-15T10:00:00+08:00")],
    )
    mp_user = (await gql(PORTRAIT, {"identity": mp_id}, token=operator))["user"]
    assert mp_user["traits"]["paidOrders"] == 1
    assert mp_user["traits"]["lifetimeValueCents"] == 10000
    merged = await link(gql, operator, kind="APP_USER_ID", value="U-j", user_id=mp_user["id"])
    person = (await gql(PORTRAIT, {"identity": app_id}, token=operator))["user"]
    traits = person["traits"]
    assert (traits["lifetimeValueCents"], traits["paidOrders"], traits["averageOrderCents"]) == (
        15000,
        2,
        7500,
    )
    assert traits["firstOrderAt"].startswith("2026-11-10T02:00:00")
    assert traits["lastOrderAt"].startswith("2026-11-15T02:00:00")
    assert traits["ordersByChannel"] == [
        {"channel": "APP", "count": 1},
        {"channel": "MINI_PROGRAM", "count": 1},
    ]
    assert traits["lastSeenAt"].startswith("2026-11-15T02:00:00")
    journey = person["journey"]
    assert journey["path"][:2] == ["MINI_PROGRAM", "APP"]
    mini = next(c for c in journey["channels"] if c["channel"] == "MINI_PROGRAM")
    assert mini["firstSeenAt"].startswith("2026-11-09T02:00:00")  # the cancelled order's record
    assert mini["firstOrderAt"].startswith("2026-11-09T02:00:00")
    # Unmerge gives each side back exactly its own.
    await gql(UNMERGE, {"id": merged["merge"]["id"]}, token=operator)
    alone = (await gql(PORTRAIT, {"identity": app_id}, token=operator))["user"]
    assert (alone["traits"]["lifetimeValueCents"], alone["traits"]["paidOrders"]) == (5000, 1)
    assert alone["journey"]["path"] == ["APP"]
    back = (await gql(PORTRAIT, {"identity": mp_id}, token=operator))["user"]
    assert (back["traits"]["lifetimeValueCents"], back["traits"]["paidOrders"]) == (10000, 1)
    assert [(p["sku"], p["channels"]) for p in back["preferences"]] == [
        ("A1", ["MINI_PROGRAM"]),
        ("A", ["MINI_PROGRAM"]),
    ]
    assert [(p["sku"], p["channels"], p["purchases"]) for p in alone["preferences"]] == [("A1", ["APP"], 1)]
    # An identity link with no record yet is an appearance in its channel (the OA follower).
    await link(gql, operator, kind="OPENID", namespace=oa_id["namespace"], value="o-j-oa", user_id=back["id"])
    later = (await gql(PORTRAIT, {"identity": oa_id}, token=operator))["user"]["journey"]
    assert later["path"] == ["MINI_PROGRAM", "OFFICIAL_ACCOUNT"]


async def test_preferences_first_out_of_range_is_bad_user_input(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    mp_id = openid(app.state.settings.mini_program_appid, "o-none")
    await link(gql, token, kind="OPENID", namespace=mp_id["namespace"], value="o-none")
    await gql.error(PORTRAIT, {"identity": mp_id, "first": 101}, token=token, code="BAD_USER_INPUT")
