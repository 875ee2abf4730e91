"""Audience conditions compiled to SQL: each kind, not over channels, whole persons, consent and
follow state read when evaluated; with channel stores shared and in databases of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from tests.factories.audiences import followed
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import (
    app_order,
    app_user,
    cart,
    event,
    ingest,
    mp_order,
    mp_reservation,
    openid,
)
from tests.factories.entitlements import grant_membership, set_consent
from tests.factories.identity import link
from tests.helpers import Gql

PREVIEW = """
query ($c: AudienceCondition!) { previewAudience(condition: $c) { size members(first: 100) { id } } }
"""
SAVE = """
mutation ($name: String!, $c: AudienceCondition!, $d: String) {
  saveAudience(name: $name, condition: $c, description: $d) { name description condition size updatedAt }
}
"""
AUDIENCE = """
query ($name: String!) {
  audience(name: $name) {
    name size members(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { id } }
  }
}
"""
MEMBERS_AFTER = """
query ($name: String!, $after: String) {
  audience(name: $name) { members(first: 2, after: $after) { pageInfo { hasNextPage } nodes { id } } }
}
"""
USER_AUDIENCES = "query ($id: ID!) { user(id: $id) { audiences } }"


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def _ids(gql: Gql, token: str, condition: dict[str, Any]) -> set[str]:
    found = (await gql(PREVIEW, {"c": condition}, token=token))["previewAudience"]
    ids = {m["id"] for m in found["members"]}
    assert found["size"] == len(ids)
    return ids


class World:
    """Five people across the channels (ids by letter)."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
        self.app, self.client, self.gql = app, client, gql
        self.ids: dict[str, str] = {}

    async def build(self) -> World:
        s = self.app.state.settings
        op = self.op = await operator_key(self.app, "operator")
        mp, oa, ap = s.mini_program_appid, s.official_account_appid, s.app_wechat_appid
        del ap
        for who in "abcde":
            self.ids[who] = (await link(self.gql, op, kind="APP_USER_ID", value=f"U-{who}"))["user"]["id"]
            for appid in (mp, oa):
                await link(
                    self.gql,
                    op,
                    kind="OPENID",
                    namespace=appid,
                    value=f"o-{who}-{appid[-2:]}",
                    user_id=self.ids[who],
                )
        keys = {c: await service_key(self.app, c) for c in ("MINI_PROGRAM", "OFFICIAL_ACCOUNT", "APP")}

        def m(who: str) -> dict[str, Any]:
            return openid(mp, f"o-{who}-{mp[-2:]}")

        def o(who: str) -> dict[str, Any]:
            return openid(oa, f"o-{who}-{oa[-2:]}")

        # a: paid in the mini program recently (twice); b: paid there 60 days ago, booked a photo
        # session; c: paid in the APP; d: reads 母婴 articles, gold member, unfollowed the official
        # account; e: a cart line untouched for 10 days, nothing else.
        await ingest(
            self.client,
            keys["MINI_PROGRAM"],
            "MINI_PROGRAM",
            [
                mp_order("m1", m("a"), order_id="MA1", status="已支付", at=ago(3)),
                mp_order("m2", m("a"), order_id="MA2", status="已支付", at=ago(2)),
                mp_order("m3", m("b"), order_id="MB1", status="已支付", at=ago(60)),
                mp_reservation("r1", m("b"), reservation_id="RB1", status="已预约", at=ago(5)),
            ],
        )
        await ingest(
            self.client,
            keys["APP"],
            "APP",
            [
                app_order("p1", app_user("U-c"), order_no="AC1", status=1, at=ago(4)),
                cart("k1", app_user("U-e"), sku="SKU-E", quantity=1, at=ago(10)),
            ],
        )
        await ingest(
            self.client,
            keys["OFFICIAL_ACCOUNT"],
            "OFFICIAL_ACCOUNT",
            [
                event("e1", o("d"), name="article_read", properties={"tags": ["母婴"]}, at=ago(1)),
                event("e2", o("d"), name="subscribe", at=ago(30)),
                event("e3", o("d"), name="unsubscribe", at=ago(2)),
                event("e4", o("a"), name="unsubscribe", at=ago(9)),
                event("e5", o("a"), name="subscribe", at=ago(8)),
            ],
        )
        await grant_membership(self.gql, op, user_id=self.ids["d"], tier="GOLD", source="APP")
        await set_consent(
            self.gql,
            user_token(self.app, self.ids["a"]),
            "MARKETING",
            granted=True,
            source="OFFICIAL_ACCOUNT",
        )
        return self

    def of(self, letters: str) -> set[str]:
        return {self.ids[x] for x in letters}


async def test_each_condition_kind(aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql) -> None:
    w = await World(aud_app, aud_client, aud_gql).build()
    op = w.op

    async def ids(c: dict[str, Any]) -> set[str]:
        return await _ids(aud_gql, op, c)

    assert await ids({"orders": {"channel": "MINI_PROGRAM"}}) == w.of("ab")
    assert await ids({"orders": {"channel": "MINI_PROGRAM", "withinDays": 30}}) == w.of("a")
    assert await ids({"orders": {"statuses": ["PAID"], "minCount": 2}}) == w.of("a")
    assert await ids({"orders": {"sku": "A1"}}) == w.of("abc")
    assert await ids({"orders": {"sku": "NOPE"}}) == set()
    assert await ids({"reservations": {"service": "儿童摄影", "statuses": ["BOOKED"]}}) == w.of("b")
    assert await ids({"behavior": {"types": ["article_read"], "tag": "母婴", "withinDays": 7}}) == w.of("d")
    assert await ids({"interest": {"tag": "母婴"}}) == w.of("d")
    assert await ids({"interest": {"tag": "儿童摄影"}}) == w.of("b")
    assert await ids({"membership": {"tiers": ["GOLD"]}}) == w.of("d")
    assert await ids({"cart": {"olderThanDays": 7}}) == w.of("e")
    assert await ids({"cart": {"sku": "SKU-E", "olderThanDays": 30}}) == set()
    assert await ids({"consent": {"purpose": "MARKETING", "channel": "OFFICIAL_ACCOUNT"}}) == w.of("a")
    assert await ids({"consent": {"purpose": "PERSONALIZATION"}}) == set()
    assert await ids({"identity": {"kind": "APP_USER_ID"}}) == w.of("abcde")
    # Following the official account: d's latest is an unsubscribe, a subscribed again.
    assert await ids({"identity": {"kind": "OPENID", "channel": "OFFICIAL_ACCOUNT"}}) == w.of("abce")
    # Booked but did not buy (within 30 days), and not over channels.
    booked_not_bought = {
        "all": [{"reservations": {"withinDays": 30}}, {"not": {"orders": {"withinDays": 30}}}]
    }
    assert await ids(booked_not_bought) == w.of("b")
    mp_not_app = {"all": [{"orders": {"channel": "MINI_PROGRAM"}}, {"not": {"orders": {"channel": "APP"}}}]}
    assert await ids(mp_not_app) == w.of("ab")
    assert await ids({"any": [{"membership": {"tiers": ["GOLD"]}}, {"orders": {"channel": "APP"}}]}) == w.of(
        "cd"
    )
    assert await ids({"not": {"identity": {"kind": "APP_USER_ID"}}}) == set()


async def test_saved_audience_pages_and_follows_consent(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    w = await World(aud_app, aud_client, aud_gql).build()
    op = w.op
    condition = {"all": [{"orders": {}}, {"consent": {"purpose": "MARKETING"}}]}
    saved = (await aud_gql(SAVE, {"name": "小程序买过", "c": condition, "d": "coupon"}, token=op))[
        "saveAudience"
    ]
    assert saved["condition"] == {"all": [{"orders": {"minCount": 1}}, {"consent": {"purpose": "MARKETING"}}]}
    assert saved["size"] == 1
    await set_consent(
        aud_gql,
        user_token(aud_app, w.ids["c"]),
        "MARKETING",
        granted=True,
        source="APP",
    )
    await followed(aud_app)
    found = (await aud_gql(AUDIENCE, {"name": "小程序买过"}, token=op))["audience"]
    assert found["size"] == 2
    assert [n["id"] for n in found["members"]["nodes"]] == sorted(w.of("ac"), key=int)
    # Consent withdrawn after saving: the kept membership follows the outbox.
    await set_consent(
        aud_gql, op, "MARKETING", granted=False, source="APP", channel="APP", user_id=w.ids["a"]
    )
    await followed(aud_app)
    assert (await aud_gql(AUDIENCE, {"name": "小程序买过"}, token=op))["audience"]["size"] == 1
    got = (await aud_gql(USER_AUDIENCES, {"id": w.ids["c"]}, token=op))["user"]["audiences"]
    assert got == ["小程序买过"]
    assert (await aud_gql(USER_AUDIENCES, {"id": w.ids["a"]}, token=op))["user"]["audiences"] == []


async def test_members_are_whole_persons(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    s = aud_app.state.settings
    op = await operator_key(aud_app, "operator")
    mp_user = (await link(aud_gql, op, kind="OPENID", namespace=s.mini_program_appid, value="o-half"))[
        "user"
    ]["id"]
    app_user_id = (await link(aud_gql, op, kind="APP_USER_ID", value="U-half"))["user"]["id"]
    await ingest(
        aud_client,
        await service_key(aud_app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [mp_order("h1", openid(s.mini_program_appid, "o-half"), order_id="H1", status="已支付", at=ago(1))],
    )
    await ingest(
        aud_client,
        await service_key(aud_app, "APP"),
        "APP",
        [app_order("h2", app_user("U-half"), order_no="H2", at=ago(1))],
    )
    two = {"orders": {"minCount": 2}}
    assert await _ids(aud_gql, op, two) == set()
    assert await _ids(aud_gql, op, {"orders": {}}) == {mp_user, app_user_id}
    merged = await link(aud_gql, op, kind="APP_USER_ID", value="U-half", user_id=mp_user)
    assert merged["merge"] is not None
    survivor = merged["user"]["id"]
    assert await _ids(aud_gql, op, two) == {survivor}
    assert await _ids(aud_gql, op, {"orders": {}}) == {survivor}


RECIPIENTS = """
query ($name: String!, $channel: Channel!, $purpose: Purpose) {
  audience(name: $name) {
    recipients(channel: $channel, purpose: $purpose, first: 100) {
      totalCount nodes { userId openid unionid appUserId } excluded { reason count }
    }
  }
}
"""


async def test_recipients_by_channel_and_purpose(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    w = await World(aud_app, aud_client, aud_gql).build()
    op, s = w.op, aud_app.state.settings
    everyone = {"identity": {"kind": "APP_USER_ID"}}
    await aud_gql(SAVE, {"name": "everyone", "c": everyone}, token=op)
    f = (await link(aud_gql, op, kind="APP_USER_ID", value="U-f"))["user"]["id"]  # no WeChat identity
    for who in (w.ids["d"], f):
        await set_consent(aud_gql, user_token(aud_app, who), "MARKETING", granted=True, source="APP")

    async def recipients(channel: str, purpose: str | None = None) -> dict[str, Any]:
        variables = {"name": "everyone", "channel": channel, "purpose": purpose}
        found: dict[str, Any] = (await aud_gql(RECIPIENTS, variables, token=op))["audience"]["recipients"]
        return found

    oa = await recipients("OFFICIAL_ACCOUNT")
    oa_appid = s.official_account_appid
    assert oa["nodes"] == [
        {"userId": w.ids["a"], "openid": f"o-a-{oa_appid[-2:]}", "unionid": None, "appUserId": None}
    ]
    assert oa["totalCount"] == 1
    # d withdrew from the official account; f has no openid of it; b, c, e never agreed to marketing.
    assert {r["reason"]: r["count"] for r in oa["excluded"]} == {
        "NO_CONSENT": 3,
        "NOT_REACHABLE": 1,
        "UNSUBSCRIBED": 1,
    }
    app = await recipients("APP")
    assert sorted(r["appUserId"] for r in app["nodes"]) == ["U-a", "U-d", "U-f"]
    assert {r["reason"]: r["count"] for r in app["excluded"]} == {"NO_CONSENT": 3}
    # PUSH is per channel and nobody granted it.
    assert (await recipients("MINI_PROGRAM", "PUSH"))["totalCount"] == 0
    # MARKETING withdrawn in one channel is withdrawn everywhere.
    await set_consent(
        aud_gql, op, "MARKETING", granted=False, source="APP", channel="APP", user_id=w.ids["a"]
    )
    assert (await recipients("OFFICIAL_ACCOUNT"))["totalCount"] == 0
    assert (await recipients("MINI_PROGRAM"))["totalCount"] == 1  # d's mini program openid
