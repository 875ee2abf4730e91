"""WeChat factories: logins and phone codes through the public mutations, pushes as WeChat signs them."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from app.wechat.fake import event_push
from tests.helpers import Gql

WECHAT_LOGIN = """
mutation ($channel: Channel!, $code: String!) {
  wechatLogin(channel: $channel, code: $code) {
    token expiresAt user { id identities { kind namespace value channel verified linkedBy } }
  }
}
"""
REQUEST_CODE = "mutation ($phone: String!) { requestPhoneCode(phone: $phone) }"
PHONE_LOGIN = """
mutation ($phone: String!, $code: String!) {
  phoneLogin(phone: $phone, smsCode: $code) { token user { id phone identities { kind value verified } } }
}
"""
BIND_PHONE = """
mutation ($phone: String, $sms: String, $wx: String, $data: String, $iv: String) {
  bindPhone(phone: $phone, smsCode: $sms, wechatPhoneCode: $wx, encryptedData: $data, iv: $iv) {
    id phone identities { kind namespace value verified linkedBy }
  }
}
"""
ME = "{ me { id phone identities { kind namespace value verified linkedBy } } }"
HISTORY = """
query ($id: ID!) { user(id: $id) { identityHistory { action kind value rule source userId } } }
"""


async def wechat_login(gql: Gql, channel: str, code: str) -> dict[str, Any]:
    """Sign in through WeChat; returns {token, expiresAt, user}."""
    session: dict[str, Any] = (await gql(WECHAT_LOGIN, {"channel": channel, "code": code}, token=None))[
        "wechatLogin"
    ]
    return session


def sent_code(caplog: pytest.LogCaptureFixture, masked_phone: str) -> str:
    """The last code the development SMS sender logged for a (masked) phone."""
    pattern = re.compile(rf"SMS to {re.escape(masked_phone)}: your Troika code is (\d{{6}})")
    found = [m[1] for r in caplog.records if r.name == "troika.sms" and (m := pattern.search(r.getMessage()))]
    assert found, f"no SMS code logged for {masked_phone}"
    return found[-1]


async def sms_code(gql: Gql, caplog: pytest.LogCaptureFixture, phone: str, masked: str) -> str:
    """Request a code for `phone` and read it where development sends it: the log."""
    caplog.set_level(logging.INFO, logger="troika.sms")
    assert (await gql(REQUEST_CODE, {"phone": phone}, token=None))["requestPhoneCode"] is True
    return sent_code(caplog, masked)


def event_xml(openid: str, event: str, *, to: str = "gh_troika", at: int | None = None, **fields: str) -> str:
    """An official-account event push as WeChat writes it."""
    return event_push(openid, event, to=to, at=at, **fields)
