"""A fake WeChat API server: the endpoints Troika calls, with WeChat's shapes and error codes.

Tests run it on a loopback port; development serves it at /fake-wechat (TROIKA_WECHAT_FAKE), so
`make run` can show a login and a phone binding with no WeChat account. People are names:
a login code is `alice` or `alice:2` (each code works once, like WeChat's), and that person's
openid per appid and unionid are derived from the name, so they are the same on every run.
A phone code is the number itself (`13800000009`, or `1-2025550123` with a country code).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from app.settings import Settings

_NAME = r"[A-Za-z0-9_.-]{1,40}"
LOGIN_CODE = re.compile(rf"^(?P<person>{_NAME})(?::{_NAME})?$")
PHONE_CODE = re.compile(rf"^(?:(?P<cc>\d{{1,3}})-)?(?P<number>\d{{5,15}})(?::{_NAME})?$")


def _derive(prefix: str, text: str) -> str:
    """A WeChat-looking id (28 characters) that one name always maps to."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return prefix + digest.replace("=", "")[:27]


@dataclass
class FakeWeChat:
    """The fake's state: apps it knows, tokens it issued, codes used, followers; thread-safe."""

    apps: dict[str, str]  # appid -> secret
    official_account_appid: str | None = None
    page_size: int = 10_000
    country_code_as_number: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, str] = field(default_factory=dict)
    token_fetches: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    used_codes: set[tuple[str, str]] = field(default_factory=set)
    session_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    preset_session_keys: dict[str, str] = field(default_factory=dict)
    persons: dict[str, str] = field(default_factory=dict)  # openid -> person
    without_unionid: set[str] = field(default_factory=set)
    followers: list[str] = field(default_factory=list)
    # When set, user/info waits for it (a slow WeChat); `failures` fails that many calls first.
    user_info_gate: threading.Event | None = None
    user_info_failures: int = 0
    batch_fail_at: int | None = None  # this call of user/info/batchget fails (an interrupted backfill)
    # "getarticlesummary:2026-12-01" -> fail that call that many times (-1, busy); extra commenters
    datacube_failures: Counter[str] = field(default_factory=Counter)
    extra_comments: int = 0

    def reset(self) -> None:
        with self.lock:
            for box in (
                self.tokens,
                self.token_fetches,
                self.calls,
                self.session_keys,
                self.datacube_failures,
            ):
                box.clear()
            self.used_codes.clear()
            self.preset_session_keys.clear()
            self.without_unionid.clear()
            self.followers.clear()
            self.user_info_gate, self.user_info_failures, self.batch_fail_at = None, 0, None
            self.page_size, self.country_code_as_number = 10_000, False
            self.extra_comments = 0

    def retire_token(self, appid: str) -> None:
        """WeChat retired the app's token (another fetch, or its expiry): calls with it get 40001."""
        with self.lock:
            self.tokens[appid] = "retired-" + secrets.token_hex(4)

    # -- who is who -------------------------------------------------------------------------
    def openid(self, appid: str, person: str) -> str:
        value = _derive("o", f"{appid}:{person}")
        with self.lock:
            self.persons[value] = person
        return value

    def unionid(self, person: str) -> str | None:
        return None if person in self.without_unionid else _derive("o", f"union:{person}")

    def follow(self, *persons: str) -> list[str]:
        """These people follow the official account; returns their openids."""
        assert self.official_account_appid
        openids = [self.openid(self.official_account_appid, p) for p in persons]
        with self.lock:
            self.followers.extend(o for o in openids if o not in self.followers)
        return openids

    def encrypt_for(self, appid: str, person: str, data: dict[str, Any]) -> tuple[str, str]:
        """What a phone does for the legacy `encryptedData`: AES-128-CBC with the session key."""
        key = self.session_keys[(appid, self.openid(appid, person))]
        iv = os.urandom(16)
        plain = json.dumps(data).encode()
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        enc = Cipher(algorithms.AES(base64.b64decode(key)), modes.CBC(iv)).encryptor()
        body = enc.update(padded) + enc.finalize()
        return base64.b64encode(body).decode(), base64.b64encode(iv).decode()

    # -- the API ----------------------------------------------------------------------------
    def asgi(self) -> Starlette:
        from app.wechat.fake_datacube import FakeDataCube

        def route(path: str, handler: Callable[[dict[str, str], Any], dict[str, Any]], method: str) -> Route:
            async def endpoint(request: Request) -> JSONResponse:
                params = dict(request.query_params)
                body = await request.json() if method == "POST" else None
                with self.lock:
                    self.calls[path] += 1
                gate = self.user_info_gate if path == "/cgi-bin/user/info" else None
                if gate is not None:
                    await anyio.to_thread.run_sync(gate.wait, 10)
                return JSONResponse(handler(params, body))

            return Route(path, endpoint, methods=[method])

        return Starlette(
            routes=[
                route("/cgi-bin/token", self._token, "GET"),
                route("/sns/jscode2session", self._jscode2session, "GET"),
                route("/sns/oauth2/access_token", self._oauth, "GET"),
                route("/wxa/business/getuserphonenumber", self._phone, "POST"),
                route("/cgi-bin/user/info", self._user_info, "GET"),
                route("/cgi-bin/user/get", self._followers, "GET"),
                route("/cgi-bin/user/info/batchget", self._batch, "POST"),
                *FakeDataCube(self).routes(route),
            ]
        )

    @staticmethod
    def _error(code: int, message: str) -> dict[str, Any]:
        return {"errcode": code, "errmsg": message}

    def _app(self, params: dict[str, str]) -> dict[str, Any] | None:
        appid = params.get("appid", "")
        if appid not in self.apps:
            return self._error(40013, "invalid appid")
        if params.get("secret") != self.apps[appid]:
            return self._error(40125, "invalid appsecret")
        return None

    def _token(self, params: dict[str, str], _body: Any) -> dict[str, Any]:
        if (failed := self._app(params)) is not None:
            return failed
        token = "fake-token-" + secrets.token_hex(8)
        with self.lock:
            self.tokens[params["appid"]] = token  # a new token makes the previous one invalid
            self.token_fetches[params["appid"]] += 1
        return {"access_token": token, "expires_in": 7200}

    def _authorized(self, params: dict[str, str]) -> str | None:
        """The appid whose current token this is, or None."""
        token = params.get("access_token")
        with self.lock:
            return next((a for a, t in self.tokens.items() if t == token), None)

    def _login(self, appid: str, code: str) -> tuple[str, dict[str, Any]] | dict[str, Any]:
        found = LOGIN_CODE.match(code)
        if found is None:
            return self._error(40029, "invalid code")
        with self.lock:
            if (appid, code) in self.used_codes:
                return self._error(40163, "code been used")
            self.used_codes.add((appid, code))
        person = found["person"]
        ids: dict[str, Any] = {"openid": self.openid(appid, person)}
        if (unionid := self.unionid(person)) is not None:
            ids["unionid"] = unionid
        return person, ids

    def _jscode2session(self, params: dict[str, str], _body: Any) -> dict[str, Any]:
        if (failed := self._app(params)) is not None:
            return failed
        login = self._login(params["appid"], params.get("js_code", ""))
        if isinstance(login, dict):
            return login
        person, ids = login
        key = self.preset_session_keys.get(person) or base64.b64encode(os.urandom(16)).decode()
        with self.lock:
            self.session_keys[(params["appid"], ids["openid"])] = key
        return {**ids, "session_key": key}

    def _oauth(self, params: dict[str, str], _body: Any) -> dict[str, Any]:
        if (failed := self._app(params)) is not None:
            return failed
        login = self._login(params["appid"], params.get("code", ""))
        if isinstance(login, dict):
            return login
        _person, ids = login
        return {
            "access_token": "fake-oauth-" + secrets.token_hex(8),
            "expires_in": 7200,
            "refresh_token": "fake-refresh-" + secrets.token_hex(8),
            "scope": "snsapi_userinfo",
            **ids,
        }

    def _phone(self, params: dict[str, str], body: Any) -> dict[str, Any]:
        appid = self._authorized(params)
        if appid is None:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        code = str((body or {}).get("code", ""))
        found = PHONE_CODE.match(code)
        if found is None:
            return self._error(40029, "invalid code")
        with self.lock:
            if (appid, "phone:" + code) in self.used_codes:
                return self._error(40029, "invalid code")
            self.used_codes.add((appid, "phone:" + code))
        cc = found["cc"] or "86"
        number = found["number"]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": number if cc == "86" else f"+{cc}{number}",
                "purePhoneNumber": number,
                "countryCode": int(cc) if self.country_code_as_number else cc,
                "watermark": {"timestamp": int(time.time()), "appid": appid},
            },
        }

    def _follower(self, openid: str) -> dict[str, Any]:
        person = self.persons.get(openid)
        info: dict[str, Any] = {"subscribe": 1, "openid": openid, "subscribe_time": int(time.time())}
        if person is not None and (unionid := self.unionid(person)) is not None:
            info["unionid"] = unionid
        return info

    def _user_info(self, params: dict[str, str], _body: Any) -> dict[str, Any]:
        if self._authorized(params) is None:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        with self.lock:
            if self.user_info_failures > 0:
                self.user_info_failures -= 1
                return self._error(-1, "system error")
        openid = params.get("openid", "")
        if openid not in self.persons:
            return self._error(40003, "invalid openid")
        return self._follower(openid)

    def _followers(self, params: dict[str, str], _body: Any) -> dict[str, Any]:
        if self._authorized(params) is None:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        with self.lock:
            everyone = list(self.followers)
        after = params.get("next_openid")
        start = everyone.index(after) + 1 if after in everyone else 0
        page = everyone[start : start + self.page_size]
        if not page:
            return {"total": len(everyone), "count": 0, "next_openid": ""}
        return {"total": len(everyone), "count": len(page), "data": {"openid": page}, "next_openid": page[-1]}

    def _batch(self, params: dict[str, str], body: Any) -> dict[str, Any]:
        if self._authorized(params) is None:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        with self.lock:
            if self.calls["/cgi-bin/user/info/batchget"] == self.batch_fail_at:
                return self._error(-1, "system error")
        wanted = [u["openid"] for u in (body or {}).get("user_list", [])]
        if len(wanted) > 100:
            return self._error(45158, "user_list size exceeds the limit of 100")
        return {"user_info_list": [self._follower(o) for o in wanted]}


def fake_wechat_for(settings: Settings) -> FakeWeChat:
    """Development: a fake that knows this deployment's apps (the demo appids and secrets)."""
    pairs = (
        (settings.mini_program_appid, settings.mini_program_secret),
        (settings.official_account_appid, settings.official_account_secret),
        (settings.app_wechat_appid, settings.app_wechat_secret),
    )
    apps = {appid: secret for appid, secret in pairs if appid and secret}
    fake = FakeWeChat(apps=apps, official_account_appid=settings.official_account_appid)
    fake.follow("alice", "bob", "carol")
    return fake


def signed_push(
    settings: Settings, xml: str, *, safe: bool, nonce: str | None = None, timestamp: str | None = None
) -> tuple[dict[str, str], str]:
    """The query and body WeChat would POST for `xml`: signed, and in safe mode encrypted."""
    token = settings.official_account_token
    assert token, "TROIKA_OFFICIAL_ACCOUNT_TOKEN is not set"
    timestamp, nonce = timestamp or str(int(time.time())), nonce or str(secrets.randbelow(10**9))
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    params = {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}
    if not safe:
        return params, xml
    crypto = WeChatCrypto(token, settings.official_account_aes_key, settings.official_account_appid)
    body = str(crypto.encrypt_message(xml, nonce, timestamp))
    signature = re.search(r"<MsgSignature><!\[CDATA\[(\w+)\]\]></MsgSignature>", body)
    assert signature is not None
    return {**params, "encrypt_type": "aes", "msg_signature": signature[1]}, body


def event_push(
    openid: str, event: str, *, to: str = "gh_troika", at: int | None = None, **fields: str
) -> str:
    """An official-account event push as WeChat writes it."""
    extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )
