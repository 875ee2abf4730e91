"""The official-account webhook: verification, plain and safe mode, the inbox, and every refusal."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from wechatpy.crypto import WeChatCrypto

from app.db.channel_models import ChannelEvent
from app.db.models import User, WechatInbox
from app.main import create_app
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from app.wechat.messages import open_push
from tests.factories.auth import operator_key
from tests.factories.wechat import event_xml, wechat_login
from tests.factories.wechat_push import PATH, push, signed
from tests.helpers import Gql

FOLLOWER = """
query ($appid: String!, $openid: String!) {
  user(identity: {kind: OPENID, namespace: $appid, value: $openid}) {
    id identities { kind value linkedBy } behavior { nodes { channel type properties } }
  }
}
"""
OTHER_KEY = "QW5vdGhlckVuY29kaW5nQWVzS2V5T2ZUaGlydHlUd28"


async def _rows(app: FastAPI) -> tuple[int, int, int]:
    """(inbox rows, behaviour events, users): what a refused push must leave as it was."""
    async with app.state.db.read_sessions() as s:
        return (
            (await s.execute(select(func.count()).select_from(WechatInbox))).scalar_one(),
            (await s.execute(select(func.count()).select_from(ChannelEvent))).scalar_one(),
            (await s.execute(select(func.count()).select_from(User))).scalar_one(),
        )


async def _inbox(app: FastAPI) -> list[tuple[str, str | None]]:
    async with app.state.db.read_sessions() as s:
        rows = await s.execute(select(WechatInbox.status, WechatInbox.outcome).order_by(WechatInbox.id))
        return [(r.status, r.outcome) for r in rows]


async def _follower(app: FastAPI, gql: Gql, openid: str) -> dict[str, Any]:
    admin = await operator_key(app, "admin")
    appid = app.state.settings.official_account_appid
    user: dict[str, Any] = (await gql(FOLLOWER, {"appid": appid, "openid": openid}, token=admin))["user"]
    return user


async def test_get_echoes_only_for_a_good_signature(app: FastAPI, client: httpx.AsyncClient) -> None:
    params = {**signed(app.state.settings.official_account_token), "echostr": "e-123"}
    ok = await client.get(PATH, params=params)
    assert (ok.status_code, ok.text) == (200, "e-123")
    bad = await client.get(PATH, params={**params, "signature": "0" * 40})
    assert bad.status_code == 403


@pytest.mark.parametrize("safe", [False, True])
async def test_a_subscribe_lands_as_behaviour_and_links_the_unionid(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat, safe: bool
) -> None:
    in_mp = await wechat_login(gql, "MINI_PROGRAM", "olga")  # the same person, known in the mini program
    [openid] = fake_wechat.follow("olga")
    xml = event_xml(openid, "subscribe", EventKey="qrscene_shop-12", Ticket="t-1")
    response = await push(client, app.state.settings, xml, safe=safe)
    assert (response.status_code, response.text) == (200, "success")
    await app.state.wechat_inbox.drain()
    assert await _inbox(app) == [("done", "subscribe: accepted; unionid linked")]
    user = await _follower(app, gql, openid)
    assert user["id"] == in_mp["user"]["id"]  # one person across the two channels
    assert user["behavior"]["nodes"] == [
        {
            "channel": "OFFICIAL_ACCOUNT",
            "type": "subscribe",
            "properties": {"scene": "shop-12", "ticket": "t-1"},
        }
    ]
    oa = next(i for i in user["identities"] if i["value"] == openid)
    assert oa["linkedBy"] == "wechat: openid from an official-account push"


async def test_each_event_type_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    [openid] = fake_wechat.follow("pete")
    s, t = app.state.settings, int(time.time())
    popup = (
        "<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[tpl-1]]></TemplateId>"
        "<SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>"
        "</SubscribeMsgPopupEvent>"
    )
    pushes = [
        event_xml(openid, "SCAN", at=t, EventKey="42", Ticket="t-2"),
        event_xml(openid, "CLICK", at=t + 1, EventKey="MENU_NEWS"),
        event_xml(openid, "VIEW", at=t + 2, EventKey="https://shop.example/a"),
        event_xml(openid, "TEMPLATESENDJOBFINISH", at=t + 3, MsgID="1001", Status="success"),
        event_xml(openid, "subscribe_msg_popup_event", at=t + 4).replace("</xml>", popup + "</xml>"),
        event_xml(openid, "unsubscribe", at=t + 5),
    ]
    for xml in pushes:
        assert (await push(client, s, xml)).status_code == 200
        await app.state.wechat_inbox.drain()  # one after another, as a person's pushes come
    nodes = (await _follower(app, gql, openid))["behavior"]["nodes"]
    assert {n["type"]: n["properties"] for n in nodes} == {
        "scan": {"scene": "42", "ticket": "t-2"},
        "menu_click": {"key": "MENU_NEWS"},
        "menu_view": {"url": "https://shop.example/a"},
        "template_send_finished": {"msgId": 1001, "status": "success"},
        "subscribe_message_popup": {
            "subscriptions": [{"templateId": "tpl-1", "status": "accept", "scene": "2"}]
        },
        "unsubscribe": {},
    }
    assert fake_wechat.calls["/cgi-bin/user/info"] == 1  # asked once; the unionid was known after


async def test_a_retried_push_is_processed_once(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    [openid] = fake_wechat.follow("quinn")
    xml = event_xml(openid, "CLICK", EventKey="MENU_NEWS")
    for _ in range(3):  # WeChat retries when it hears nothing within 5 s: new nonce, same push
        assert (await push(client, app.state.settings, xml)).text == "success"
    await app.state.wechat_inbox.drain()
    assert len(await _inbox(app)) == 1
    assert len((await _follower(app, gql, openid))["behavior"]["nodes"]) == 1


async def test_the_answer_does_not_wait_for_wechat(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    [openid] = fake_wechat.follow("rosa")
    fake_wechat.user_info_gate = threading.Event()  # WeChat's user/info hangs until released
    response = await push(client, app.state.settings, event_xml(openid, "subscribe"))
    assert response.text == "success"
    # Answered while WeChat still holds user/info: the push is stored, not yet done.
    assert [s for s, _ in await _inbox(app)] in (["pending"], ["processing"])
    fake_wechat.user_info_gate.set()
    await app.state.wechat_inbox.drain()
    assert await _inbox(app) == [("done", "subscribe: accepted; unionid linked")]


async def test_a_failed_push_is_finished_by_the_next_run(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    [openid] = fake_wechat.follow("sam")
    fake_wechat.user_info_failures = 1
    await push(client, app.state.settings, event_xml(openid, "subscribe"))
    await app.state.wechat_inbox.drain()
    [(status, outcome)] = await _inbox(app)
    assert status == "retrying"  # its job waits out the backoff (tests/jobs: retried, then FAILED)
    assert "busy" in (outcome or "")
    # What `troika wechat process-inbox` does: one attempt now at every unfinished push.
    assert await app.state.wechat_inbox.process_unfinished() == {"done": 1}
    assert await _inbox(app) == [("done", "subscribe: duplicate; unionid linked")]
    assert len((await _follower(app, gql, openid))["behavior"]["nodes"]) == 1


async def test_a_push_stored_before_a_crash_is_not_lost(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    """What the webhook does before it answers, and nothing after: the process died there."""
    [openid] = fake_wechat.follow("tina")
    s, inbox = app.state.settings, app.state.wechat_inbox
    params = signed(s.official_account_token)
    received = open_push(
        event_xml(openid, "subscribe").encode(), params, token=s.official_account_token, aes_key=None,
        appid=s.official_account_appid,
    )  # fmt: skip
    assert await inbox.receive(received, timestamp=params["timestamp"], nonce=params["nonce"]) is not None
    assert [s for s, _ in await _inbox(app)] == ["pending"]
    assert await inbox.process_unfinished() == {"done": 1}
    assert (await _follower(app, gql, openid))["behavior"]["nodes"][0]["type"] == "subscribe"


async def test_the_bind_phone_menu_replies_with_a_link(settings: Settings, fake_wechat: FakeWeChat) -> None:
    s = settings.model_copy(update={"official_account_bind_phone_url": "https://h5.example/bind"})
    app = create_app(s)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as client:
            await _bind_phone_replies(app, client, fake_wechat)
    finally:
        await app.state.db.dispose()


async def _bind_phone_replies(app: FastAPI, client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    s = app.state.settings
    [openid] = fake_wechat.follow("uma")
    plain = await push(client, s, event_xml(openid, "CLICK", EventKey="BIND_PHONE"))
    assert "https://h5.example/bind" in plain.text
    assert f"<ToUserName><![CDATA[{openid}]]></ToUserName>" in plain.text
    params = signed(s.official_account_token)
    xml = event_xml(openid, "CLICK", at=int(time.time()) + 1, EventKey="BIND_PHONE")
    safe = await push(client, s, xml, safe=True, nonce=params["nonce"], timestamp=int(params["timestamp"]))
    assert "https://h5.example" not in safe.text
    crypto = WeChatCrypto(s.official_account_token, s.official_account_aes_key, s.official_account_appid)
    signature = safe.text.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    decrypted = crypto.decrypt_message(safe.text, signature, params["timestamp"], params["nonce"])
    assert "https://h5.example/bind" in decrypted


async def test_refused_pushes_write_nothing(
    app: FastAPI, client: httpx.AsyncClient, fake_wechat: FakeWeChat
) -> None:
    s = app.state.settings
    [openid] = fake_wechat.follow("vera")
    xml = event_xml(openid, "subscribe")
    before = await _rows(app)
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><ToUserName>&c;</ToUserName><MsgType>event</MsgType>'
        "</xml>"
    )
    cases = [
        (403, await push(client, s, xml, signature="0" * 40)),  # not WeChat's signature
        (403, await push(client, s, xml, token="not-the-token")),
        (403, await push(client, s, xml, safe=True, msg_signature="0" * 40)),
        (400, await push(client, s, xml, safe=True, aes_key=OTHER_KEY)),  # another account's AES key
        (400, await push(client, s, "<xml><ToUserName>unclosed")),  # malformed
        (400, await push(client, s, "<notwechat/>")),
        (400, await push(client, s, bomb)),  # entity expansion
        (400, await push(client, s, xml.replace("</xml>", "<Pad>" + "x" * 70_000 + "</Pad></xml>"))),
        (403, await push(client, s, xml, timestamp=int(time.time()) - 3600)),  # a replay, an hour later
    ]
    assert [expected for expected, _ in cases] == [r.status_code for _, r in cases], [
        r.text for _, r in cases
    ]
    assert await _rows(app) == before


async def test_a_signature_used_for_another_push_is_a_replay(
    app: FastAPI, client: httpx.AsyncClient, fake_wechat: FakeWeChat
) -> None:
    s = app.state.settings
    [openid] = fake_wechat.follow("walt")
    params = signed(s.official_account_token)
    first = await push(client, s, event_xml(openid, "CLICK", EventKey="A"), nonce=params["nonce"],
                       timestamp=int(params["timestamp"]))  # fmt: skip
    assert first.status_code == 200
    await app.state.wechat_inbox.drain()
    before = await _rows(app)
    forged = event_xml(openid, "CLICK", at=int(time.time()) + 7, EventKey="B")
    replay = await push(client, s, forged, nonce=params["nonce"], timestamp=int(params["timestamp"]))
    assert (replay.status_code, "already used" in replay.text) == (403, True)
    assert await _rows(app) == before
