"""The portrait's audience conditions (traits, preference, journey) hold exactly for the people
whose User.traits, User.preferences and User.journey say so: merged persons, split stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.factories.identity import link
from tests.factories.wechat import PHONE_LOGIN, sms_code
from tests.helpers import Gql

PREVIEW = """
query ($c: AudienceCondition!) { previewAudience(condition: $c) { size members(first: 100) { id } } }
"""
PORTRAIT = """
query ($id: ID!) {
  user(id: $id) {
    traits { lifetimeValueCents paidOrders lastOrderAt }
    preferences(first: 50) { sku score }
    journey { path }
  }
}
"""


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def _ids(gql: Gql, token: str, condition: dict[str, Any]) -> set[str]:
    found = (await gql(PREVIEW, {"c": condition}, token=token))["previewAudience"]
    ids = {m["id"] for m in found["members"]}
    assert found["size"] == len(ids)
    return ids


class People:
    """p: mini program buyer and viewer; q: APP buyer with cart adds; r: two halves merged later."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
        self.app, self.client, self.gql = app, client, gql
        self.ids: dict[str, str] = {}

    async def build(self) -> People:
        s = self.app.state.settings
        self.op = op = await operator_key(self.app, "operator")
        mp = s.mini_program_appid
        self.ids["p"] = (await link(self.gql, op, kind="OPENID", namespace=mp, value="o-p"))["user"]["id"]
        self.ids["q"] = (await link(self.gql, op, kind="APP_USER_ID", value="U-q"))["user"]["id"]
        self.ids["r"] = (await link(self.gql, op, kind="OPENID", namespace=mp, value="o-r"))["user"]["id"]
        self.ids["r2"] = (await link(self.gql, op, kind="APP_USER_ID", value="U-r"))["user"]["id"]
        mp_key, app_key = await service_key(self.app, "MINI_PROGRAM"), await service_key(self.app, "APP")
        await ingest(
            self.client,
            mp_key,
            "MINI_PROGRAM",
            [
                mp_order("m1", openid(mp, "o-p"), order_id="P1", status="已支付", amount="100元", at=ago(3)),
                mp_order("m2", openid(mp, "o-p"), order_id="P2", status="待支付", amount="900元", at=ago(2)),
                event("m3", openid(mp, "o-p"), name="product_view", properties={"goodsId": "G7"}, at=ago(1)),
                event("m4", openid(mp, "o-p"), name="favorite", properties={"sku": " G7 "}, at=ago(1)),
                mp_order("m5", openid(mp, "o-r"), order_id="R1", status="已支付", amount="50元", at=ago(10)),
            ],
        )
        await ingest(
            self.client,
            app_key,
            "APP",
            [
                app_order("a1", app_user("U-q"), order_no="Q1", status=1, total_fen=30000, at=ago(40)),
                cart("a2", app_user("U-q"), sku="B2", quantity=1, at=ago(5)),
                cart("a3", app_user("U-q"), sku="B2", quantity=2, at=ago(4)),
                cart("a4", app_user("U-q"), sku="B2", quantity=1, at=ago(3)),
                event("a5", app_user("U-q"), name="product_view", properties={"product_id": 7}, at=ago(2)),
                app_order("a6", app_user("U-r"), order_no="R2", status=1, total_fen=20000, at=ago(20)),
            ],
        )
        return self

    async def merge_r(self) -> None:
        merged = await link(self.gql, self.op, kind="APP_USER_ID", value="U-r", user_id=self.ids["r"])
        assert merged["merge"] is not None
        self.ids["r"] = merged["user"]["id"]
        self.ids.pop("r2")

    async def portraits(self) -> dict[str, dict[str, Any]]:
        return {
            uid: (await self.gql(PORTRAIT, {"id": uid}, token=self.op))["user"] for uid in self.ids.values()
        }


def _days_since(at: str | None) -> float:
    if at is None:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(at)).total_seconds() / 86400


def _traits_hold(p: dict[str, Any], cond: dict[str, Any]) -> bool:
    t = p["traits"]
    return bool(
        t["lifetimeValueCents"] >= cond.get("minLifetimeValueCents", 0)
        and t["paidOrders"] >= cond.get("minPaidOrders", 0)
        and _days_since(t["lastOrderAt"]) <= cond.get("lastOrderWithinDays", float("inf"))
    )


def _preference_holds(p: dict[str, Any], cond: dict[str, Any]) -> bool:
    return any(x["sku"] == cond["sku"] and x["score"] >= cond.get("minScore", 0) for x in p["preferences"])


def _journey_holds(p: dict[str, Any], cond: dict[str, Any]) -> bool:
    prefix = cond.get("pathStartsWith") or [cond["firstChannel"]]
    return p["journey"]["path"][: len(prefix)] == prefix and (
        "firstChannel" not in cond or p["journey"]["path"][:1] == [cond["firstChannel"]]
    )


TRAITS: list[dict[str, Any]] = [
    {"minLifetimeValueCents": 10000},
    {"minLifetimeValueCents": 25000},
    {"minPaidOrders": 2},
    {"lastOrderWithinDays": 7},
    {"lastOrderWithinDays": 30, "minPaidOrders": 1},
]
PREFERENCES: list[dict[str, Any]] = [
    {"sku": "G7"},
    {"sku": "G7", "minScore": 3.5},
    {"sku": "B2", "minScore": 7},
    {"sku": "7"},
]
JOURNEYS: list[dict[str, Any]] = [
    {"firstChannel": "MINI_PROGRAM"},
    {"firstChannel": "APP"},
    {"pathStartsWith": ["APP", "MINI_PROGRAM"]},
    {"firstChannel": "APP", "pathStartsWith": ["APP"]},
]


async def _agree(people: People) -> dict[str, set[str]]:
    """Every condition's members are those whose portrait says so; returns members by condition."""
    portraits = await people.portraits()
    out: dict[str, set[str]] = {}
    checks: list[tuple[str, list[dict[str, Any]], Callable[[dict[str, Any], dict[str, Any]], bool]]] = [
        ("traits", TRAITS, _traits_hold),
        ("preference", PREFERENCES, _preference_holds),
        ("journey", JOURNEYS, _journey_holds),
    ]
    for kind, conds, holds in checks:
        for cond in conds:
            got = await _ids(people.gql, people.op, {kind: cond})
            want = {uid for uid, p in portraits.items() if holds(p, cond)}
            assert got == want, (kind, cond, portraits)
            out[f"{kind} {sorted(cond.items())}"] = got
    return out


async def test_portrait_conditions_match_the_portrait_and_follow_merges(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    people = await People(aud_app, aud_client, aud_gql).build()
    ids = people.ids
    before = await _agree(people)
    assert before["traits [('minLifetimeValueCents', 25000)]"] == {ids["q"]}
    assert before["traits [('minPaidOrders', 2)]"] == set()
    assert before["preference [('sku', 'G7')]"] == {ids["p"]}  # the MP's goodsId and everyone's sku
    assert before["preference [('minScore', 7), ('sku', 'B2')]"] == {ids["q"]}  # two cart adds of 4
    assert before["preference [('sku', '7')]"] == {ids["q"]}  # an integer product_id
    assert before["journey [('firstChannel', 'APP')]"] == {ids["q"], ids["r2"]}
    await people.merge_r()
    after = await _agree(people)
    assert after["traits [('minLifetimeValueCents', 25000)]"] == {ids["q"], ids["r"]}
    assert after["traits [('minPaidOrders', 2)]"] == {ids["r"]}
    assert after["journey [('pathStartsWith', ['APP', 'MINI_PROGRAM'])]"] == {ids["r"]}


@pytest.mark.parametrize(
    ("condition", "where"),
    [
        ({"traits": {}}, "condition.traits"),
        ({"traits": {"minPaidOrders": 0}}, "condition.traits.minPaidOrders"),
        ({"traits": {"minLifetimeValueCents": -5}}, "condition.traits.minLifetimeValueCents"),
        ({"traits": {"lastOrderWithinDays": 99999}}, "condition.traits.lastOrderWithinDays"),
        ({"preference": {"sku": " "}}, "condition.preference.sku"),
        ({"preference": {"sku": "A1", "minScore": -1}}, "condition.preference.minScore"),
        ({"journey": {}}, "condition.journey"),
        ({"journey": {"pathStartsWith": []}}, "condition.journey.pathStartsWith"),
        ({"journey": {"pathStartsWith": ["APP", "APP"]}}, "condition.journey.pathStartsWith"),
    ],
)
async def test_bad_portrait_conditions_are_refused(
    aud_app: FastAPI, aud_gql: Gql, condition: dict[str, Any], where: str
) -> None:
    op = await operator_key(aud_app, "operator")
    error = await aud_gql.error(PREVIEW, {"c": condition}, token=op, code="BAD_USER_INPUT")
    assert error["message"].startswith(f"{where}:"), error["message"]


async def test_a_sign_in_is_an_appearance_in_the_journey(
    aud_app: FastAPI, aud_gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    op = await operator_key(aud_app, "operator")
    code = await sms_code(aud_gql, caplog, "13800138777", "138****8777")
    session = (await aud_gql(PHONE_LOGIN, {"phone": "13800138777", "code": code}, token=None))["phoneLogin"]
    uid = session["user"]["id"]  # a phone only: no record, no identity of a channel, one APP sign-in
    path = (await aud_gql(PORTRAIT, {"id": uid}, token=op))["user"]["journey"]["path"]
    assert path == ["APP"]
    assert await _ids(aud_gql, op, {"journey": {"firstChannel": "APP"}}) == {uid}
    assert await _ids(aud_gql, op, {"journey": {"pathStartsWith": ["MINI_PROGRAM"]}}) == set()
