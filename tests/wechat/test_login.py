"""WeChat logins against the fake WeChat API: mini program, APP and official-account web codes."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import WechatSession
from app.main import create_app
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key
from tests.factories.identity import link
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


async def _login_error(settings: Settings, update: dict[str, Any], code: str) -> dict[str, Any]:
    other = create_app(settings.model_copy(update=update))
    try:
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as http:
            variables = {"channel": "MINI_PROGRAM", "code": "zed"}
            return await Gql(http).error(WECHAT_LOGIN, variables, token=None, code=code)
    finally:
        await other.state.db.dispose()


async def test_wechat_failures_are_clear_and_change_nothing(
    settings: Settings, fake_wechat: FakeWeChat
) -> None:
    down = await _login_error(settings, {"wechat_api_base_url": "http://127.0.0.1:9"}, "WECHAT_UNAVAILABLE")
    assert "could not be reached" in down["message"]
    wrong = await _login_error(settings, {"mini_program_secret": "wrong"}, "WECHAT_ERROR")
    assert wrong["extensions"]["errcode"] == 40125
    missing = await _login_error(settings, {"mini_program_secret": None}, "WECHAT_NOT_CONFIGURED")
    assert "TROIKA_MINI_PROGRAM_SECRET" in missing["message"]


async def test_a_unionid_that_clashes_still_signs_in_by_the_openid(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    """The unionid already belongs to someone holding another openid of this mini program."""
    mp = app.state.settings.mini_program_appid
    admin = await operator_key(app, "admin")
    unionid = fake_wechat.unionid("kim")
    assert unionid is not None
    other = await link(gql, admin, kind="OPENID", namespace=mp, value="o-someone-else", unionid=unionid)
    session = await wechat_login(gql, "MINI_PROGRAM", "kim")
    assert session["user"]["id"] != other["user"]["id"]
    assert [i["kind"] for i in session["user"]["identities"]] == ["OPENID"]
