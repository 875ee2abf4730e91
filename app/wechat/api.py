"""The WeChat API through wechatpy, from async code: each call runs in a worker thread.

wechatpy's clients are synchronous (requests); `asyncio.to_thread` keeps the event loop free.
The base URL comes from settings (`TROIKA_WECHAT_API_BASE_URL`), for tests and the fake alike.
One `WeChatClient` per app per process (its token lives in the shared TokenStore); a new
`WeChatOAuth` per login, as it keeps the login's state on itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from wechatpy import WeChatClient, WeChatOAuth
from wechatpy.exceptions import WeChatClientException

from app.domain import Channel
from app.errors import DomainError
from app.settings import Settings
from app.wechat.tokens import TokenStore

log = logging.getLogger("troika.wechat")
T = TypeVar("T")

# WeChat error codes that mean "this code is no good" (invalid, used, missing).
_BAD_CODE = {40029, 40163, 41008}
# ... and that mean "try again later" (busy, rate limited).
_UNAVAILABLE = {-1, 45009, 45011}


class WeChatError(DomainError):
    code = "WECHAT_ERROR"


class _Client(WeChatClient):  # type: ignore[misc]
    """A client for one app whose every URL starts at the configured base and whose token is shared."""

    def __init__(self, appid: str, secret: str, *, base_url: str, tokens: TokenStore, timeout: float) -> None:
        super().__init__(appid, secret, session=tokens.storage, timeout=timeout)
        self.base_url = base_url
        self.API_BASE_URL = f"{base_url}/cgi-bin/"
        self.wxa.API_BASE_URL = f"{base_url}/"
        self.datacube.API_BASE_URL = f"{base_url}/datacube/"
        self._fetch_lock = tokens.lock(appid)
        self._seen = threading.local()

    @property
    def access_token(self) -> str:
        """The shared token (the store's TTL retires it early); fetched when there is none."""
        token = self.session.get(self.access_token_key)
        if not token:
            self.fetch_access_token()
            token = self.session.get(self.access_token_key)
        self._seen.token = token
        return str(token)

    def fetch_access_token(self) -> dict[str, Any]:
        """Fetch under the app's lock, unless another instance replaced the token we last used."""
        stale = getattr(self._seen, "token", None)
        with self._fetch_lock():
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return {"access_token": current}
            res = self._http.get(
                f"{self.base_url}/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
                timeout=self.timeout,
            )
            res.raise_for_status()
            result: dict[str, Any] = res.json()
            if result.get("errcode"):
                raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self)
            ttl = max(int(result.get("expires_in", 7200)) - 300, 60)
            self.session.set(self.access_token_key, result["access_token"], ttl)
            log.info("fetched a WeChat access token for %s", self.appid)
            return result


class _OAuth(WeChatOAuth):  # type: ignore[misc]
    """`sns/oauth2/access_token` at the configured base, with a timeout."""

    def __init__(self, appid: str, secret: str, *, base_url: str, timeout: float) -> None:
        super().__init__(appid, secret, redirect_uri="")
        self.API_BASE_URL = f"{base_url}/"
        self._timeout = timeout

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


def _raise_for(what: str, exc: Exception) -> DomainError:
    """A WeChat failure as the error a caller can act on."""
    if isinstance(exc, WeChatClientException) and exc.errcode is not None:
        errcode = int(exc.errcode)
        log.warning("WeChat %s failed: %s %s", what, errcode, exc.errmsg)
        if errcode in _BAD_CODE:
            return WeChatError(
                f"WeChat refused the code ({errcode}: {exc.errmsg}); codes work once and expire "
                "after 5 minutes, get a new one",
                code="WECHAT_CODE_INVALID",
                errcode=errcode,
            )
        if errcode in _UNAVAILABLE:
            return WeChatError(
                f"WeChat is busy ({errcode}); try again", code="WECHAT_UNAVAILABLE", errcode=errcode
            )
        return WeChatError(f"WeChat {what} failed ({errcode}: {exc.errmsg})", errcode=errcode)
    log.warning("WeChat %s failed: %r", what, exc)
    return WeChatError(f"WeChat could not be reached for {what}; try again", code="WECHAT_UNAVAILABLE")


class WeChatApi:
    """The calls Troika makes, per configured app; every one maps WeChat's failures to DomainErrors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.wechat_api_base_url.rstrip("/")
        self.tokens = TokenStore(settings.redis_url)
        self._clients: dict[str, _Client] = {}
        self._guard = threading.Lock()

    def _credentials(self, channel: Channel) -> tuple[str, str]:
        s = self.settings
        appid, secret = {
            Channel.MINI_PROGRAM: (s.mini_program_appid, s.mini_program_secret),
            Channel.OFFICIAL_ACCOUNT: (s.official_account_appid, s.official_account_secret),
            Channel.APP: (s.app_wechat_appid, s.app_wechat_secret),
        }[channel]
        if not appid or not secret:
            prefix = {Channel.APP: "APP_WECHAT"}.get(channel, channel.value)
            raise WeChatError(
                f"WeChat is not configured for {channel.value}: set TROIKA_{prefix}_APPID and "
                f"TROIKA_{prefix}_SECRET",
                code="WECHAT_NOT_CONFIGURED",
            )
        return appid, secret

    def client_appid(self, channel: Channel) -> str:
        return self._credentials(channel)[0]

    def client(self, channel: Channel) -> _Client:
        """The process's client for a channel's app (synchronous: call it from a thread)."""
        appid, secret = self._credentials(channel)
        with self._guard:
            found = self._clients.get(appid)
            if found is None:
                found = _Client(
                    appid,
                    secret,
                    base_url=self.base_url,
                    tokens=self.tokens,
                    timeout=self.settings.wechat_timeout_seconds,
                )
                self._clients[appid] = found
            return found

    async def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a blocking wechatpy call in a thread; WeChat's failures become DomainErrors."""
        try:
            return await asyncio.to_thread(fn)
        except (WeChatClientException, requests.RequestException) as exc:
            raise _raise_for(what, exc) from exc

    async def code_to_session(self, code: str) -> dict[str, Any]:
        """Mini program `wx.login` code -> openid, session_key and (when bound) unionid."""
        client = self.client(Channel.MINI_PROGRAM)
        result: dict[str, Any] = await self.call("jscode2session", lambda: client.wxa.code_to_session(code))
        return result

    async def oauth_login(self, channel: Channel, code: str) -> dict[str, Any]:
        """APP (mobile SDK) or official-account web code -> openid and (when bound) unionid."""
        appid, secret = self._credentials(channel)

        def fetch() -> dict[str, Any]:
            oauth = _OAuth(
                appid, secret, base_url=self.base_url, timeout=self.settings.wechat_timeout_seconds
            )
            try:
                result: dict[str, Any] = oauth.fetch_access_token(code)
                return result
            finally:
                oauth._http.close()

        return await self.call("sns/oauth2/access_token", fetch)

    async def phone_number(self, code: str) -> dict[str, Any]:
        """A mini program phone code -> phone_info (wechatpy 1.8 has no method for it)."""
        client = self.client(Channel.MINI_PROGRAM)

        def fetch() -> dict[str, Any]:
            result: dict[str, Any] = client.post(
                "wxa/business/getuserphonenumber", data={"code": code}, api_base_url=f"{self.base_url}/"
            )
            return result

        return await self.call("getuserphonenumber", fetch)

    async def follower(self, openid: str) -> dict[str, Any]:
        """An official-account follower's `user/info` (holds the unionid when the account is bound)."""
        client = self.client(Channel.OFFICIAL_ACCOUNT)
        result: dict[str, Any] = await self.call("user/info", lambda: client.user.get(openid))
        return result

    def close(self) -> None:
        with self._guard:
            for client in self._clients.values():
                client._http.close()
            self._clients.clear()
        self.tokens.close()
