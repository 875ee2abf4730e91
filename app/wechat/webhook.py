"""`/wechat/official-account`: the URL to configure in the official-account console.

GET answers WeChat's echo check. POST verifies the push (signature, age, safe-mode decrypt,
XML safety, size), stores it in the inbox, and answers at once, well within WeChat's 5 seconds;
the slow work (WeChat's user/info for the unionid) runs from the inbox afterwards.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import ClickEvent
from wechatpy.replies import TextReply

from app.settings import Settings
from app.wechat.inbox import OfficialAccountInbox, Replayed
from app.wechat.messages import Push, PushRejected, open_push, verify_request

log = logging.getLogger("troika.wechat.webhook")
PATH = "/wechat/official-account"


def _refuse(exc: PushRejected) -> Response:
    log.warning("official-account push refused (%s): %s", exc.status, exc.message)
    return PlainTextResponse(exc.message, status_code=exc.status)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PushRejected(400, f"the push is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PushRejected(400, f"the push is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reply(push: Push, settings: Settings, params: dict[str, str]) -> str:
    """'success', or for the bind-phone menu a text with the link (encrypted like the push)."""
    message = push.message
    if not (isinstance(message, ClickEvent) and message.key == settings.official_account_bind_phone_key):
        return "success"
    url = settings.official_account_bind_phone_url
    link = f'<a href="{url}">绑定手机号</a>' if url else "在公众号页面中绑定手机号"
    text = f"绑定手机号，享受会员权益：{link}"
    xml = TextReply(content=text, message=message, time=int(time.time())).render()
    if not push.encrypted:
        return str(xml)
    token, aes_key = settings.official_account_token, settings.official_account_aes_key
    crypto = WeChatCrypto(token, aes_key, settings.official_account_appid)
    return str(crypto.encrypt_message(xml, params.get("nonce", ""), params.get("timestamp")))


def official_account_router(settings: Settings, inbox: OfficialAccountInbox) -> APIRouter:
    router = APIRouter()

    def token() -> str:
        if not settings.official_account_token:
            raise PushRejected(503, "the official account is not configured (TROIKA_OFFICIAL_ACCOUNT_TOKEN)")
        return settings.official_account_token

    @router.get(PATH, include_in_schema=False)
    async def echo(request: Request) -> Response:
        """WeChat's check when the URL is saved in the console: the signature, then echostr back."""
        params = dict(request.query_params)
        try:
            verify_request(token(), params, max_age=0)
        except PushRejected as exc:
            return _refuse(exc)
        return PlainTextResponse(params.get("echostr", ""))

    @router.post(PATH, include_in_schema=False)
    async def push(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            verify_request(token(), params, max_age=settings.official_account_max_age_seconds)
            body = await _body(request, settings.official_account_max_body_bytes)
            received = open_push(
                body,
                params,
                token=token(),
                aes_key=settings.official_account_aes_key,
                appid=inbox.appid,
            )
            push_id = await inbox.receive(
                received, timestamp=params["timestamp"], nonce=params.get("nonce", "")
            )
        except PushRejected as exc:
            return _refuse(exc)
        except Replayed:
            return _refuse(PushRejected(403, "this signature was already used by another push (a replay?)"))
        if push_id is not None:
            await inbox.submit(push_id)
        answer = _reply(received, settings, params)
        return Response(answer, media_type="application/xml" if answer != "success" else "text/plain")

    return router
