"""WeChat rules: an openid arriving with a unionid joins both; a unionid joins every app's openids."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import LINK, link
from tests.helpers import Gql, untraced

USER = "query ($id: ID!) { user(id: $id) { id identities { kind namespace value channel } } }"


async def test_openid_with_unionid_links_both_to_one_user(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    mp = app.state.settings.mini_program_appid
    result = await link(gql, token, kind="OPENID", namespace=mp, value="o-mp-1", unionid="u-1")
    user = (await gql(USER, {"id": result["user"]["id"]}, token=token))["user"]
    assert {(i["kind"], i["namespace"], i["channel"]) for i in user["identities"]} == {
        ("OPENID", mp, "MINI_PROGRAM"),
        ("UNIONID", None, None),
    }
    assert all(i["kind"] == "OPENID" or i["value"] == "u-1" for i in user["identities"])


async def test_unionid_links_the_openids_of_every_app(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    s = app.state.settings
    first = await link(
        gql, token, kind="OPENID", namespace=s.mini_program_appid, value="o-mp-2", unionid="u-2"
    )
    second = await link(
        gql, token, kind="OPENID", namespace=s.official_account_appid, value="o-oa-2", unionid="u-2"
    )
    third = await link(
        gql, token, kind="OPENID", namespace=s.app_wechat_appid, value="o-app-2", unionid="u-2"
    )
    assert first["user"]["id"] == second["user"]["id"] == third["user"]["id"]
    assert second["merge"] is None
    user = (await gql(USER, {"id": first["user"]["id"]}, token=token))["user"]
    assert {i["channel"] for i in user["identities"] if i["kind"] == "OPENID"} == {
        "MINI_PROGRAM",
        "OFFICIAL_ACCOUNT",
        "APP",
    }


async def test_openid_and_unionid_of_two_users_merge_them(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    s = app.state.settings
    by_openid = await link(gql, token, kind="OPENID", namespace=s.mini_program_appid, value="o-mp-3")
    by_unionid = await link(
        gql, token, kind="OPENID", namespace=s.official_account_appid, value="o-oa-3", unionid="u-3"
    )
    joined = await link(
        gql, token, kind="OPENID", namespace=s.mini_program_appid, value="o-mp-3", unionid="u-3"
    )
    assert joined["merge"]["survivorId"] == by_openid["user"]["id"]
    assert joined["merge"]["absorbedId"] == by_unionid["user"]["id"]


async def test_two_openids_of_one_appid_are_two_people(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    mp = app.state.settings.mini_program_appid
    await link(gql, token, kind="OPENID", namespace=mp, value="o-mp-4", unionid="u-4")
    error = await gql.error(
        LINK,
        {"identity": {"kind": "OPENID", "namespace": mp, "value": "o-mp-5", "unionid": "u-4"}},
        token=token,
        code="IDENTITY_CONFLICT",
    )
    assert untraced(error["extensions"]) == {
        "code": "IDENTITY_CONFLICT",
        "kind": "OPENID",
        "namespace": mp,
        "userIds": error["extensions"]["userIds"],
    }


async def test_openid_of_an_unknown_appid_has_no_channel(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    result = await link(gql, token, kind="OPENID", namespace="wxunknown", value="o-x")
    user = (await gql(USER, {"id": result["user"]["id"]}, token=token))["user"]
    assert user["identities"][0]["channel"] is None


async def test_unionid_only_rides_with_an_openid(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    await gql.error(
        LINK,
        {"identity": {"kind": "PHONE", "value": "13800138000", "unionid": "u-6"}},
        token=token,
        code="BAD_USER_INPUT",
    )
