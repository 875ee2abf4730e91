"""WeChat logins against the fake WeChat API: mini program, APP and official-account web codes."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import WechatSession
from app.wechat.fake import FakeWeChat
from tests.factories.wechat import ME, WECHAT_LOGIN, wechat_login
from tests.helpers import Gql


async def test_mini_program_login_links_openid_and_unionid_and_keeps_the_session_key(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    mp = app.state.settings.mini_program_appid
    session = await wechat_login(gql, "MINI_PROGRAM", "alice")
    ids = {(i["kind"], i["namespace"], i["value"]) for i in session["user"]["identities"]}
    assert ids == {
        ("OPENID", mp, fake_wechat.openid(mp, "alice")),
        ("UNIONID", None, fake_wechat.unionid("alice")),
    }
    assert all(i["verified"] for i in session["user"]["identities"])
    assert session["user"]["identities"][0]["linkedBy"] == "wechat: openid and unionid from code2session"
    me = (await gql(ME, token=session["token"]))["me"]
    assert me["id"] == session["user"]["id"]
    # The session key stays on the server, sealed: not in the answer, not in the clear at rest.
    key = fake_wechat.session_keys[(mp, fake_wechat.openid(mp, "alice"))]
    assert key not in str(session)
    async with app.state.db.read_sessions() as s:
        sealed = (await s.execute(select(WechatSession.sealed_key))).scalars().all()
    assert len(sealed) == 1
    assert key not in sealed[0]


async def test_app_login_finds_the_mini_program_person_through_the_unionid(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    s = app.state.settings
    in_mp = await wechat_login(gql, "MINI_PROGRAM", "bob")
    in_app = await wechat_login(gql, "APP", "bob")
    assert in_app["user"]["id"] == in_mp["user"]["id"]
    channels = {i["channel"] for i in in_app["user"]["identities"] if i["kind"] == "OPENID"}
    assert channels == {"MINI_PROGRAM", "APP"}
    openids = {i["value"] for i in in_app["user"]["identities"] if i["kind"] == "OPENID"}
    assert fake_wechat.openid(s.app_wechat_appid, "bob") in openids
    web = await wechat_login(gql, "OFFICIAL_ACCOUNT", "bob")
    assert web["user"]["id"] == in_mp["user"]["id"]


async def test_a_person_without_unionid_is_known_by_openid_alone(gql: Gql, fake_wechat: FakeWeChat) -> None:
    fake_wechat.without_unionid.add("carol")
    session = await wechat_login(gql, "MINI_PROGRAM", "carol")
    assert [i["kind"] for i in session["user"]["identities"]] == ["OPENID"]
    again = await wechat_login(gql, "MINI_PROGRAM", "carol:2")
    assert again["user"]["id"] == session["user"]["id"]


async def test_bad_and_used_codes_are_refused(gql: Gql, fake_wechat: FakeWeChat) -> None:
    await wechat_login(gql, "MINI_PROGRAM", "dave")
    error = await gql.error(
        WECHAT_LOGIN, {"channel": "MINI_PROGRAM", "code": "dave"}, token=None, code="WECHAT_CODE_INVALID"
    )
    assert error["extensions"]["errcode"] == 40163
    bad = await gql.error(
        WECHAT_LOGIN, {"channel": "APP", "code": "not a code!"}, token=None, code="WECHAT_CODE_INVALID"
    )
    assert bad["extensions"]["errcode"] == 40029
