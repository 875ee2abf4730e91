"""Official-account pushes as WeChat sends them: signed query strings, plain or safe (AES) mode."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from wechatpy.utils import WeChatSigner

from app.settings import Settings
from app.wechat.fake import signed_push

PATH = "/wechat/official-account"


def signed(token: str, *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """signature/timestamp/nonce as WeChat computes them."""
    ts, nonce = str(timestamp or int(time.time())), nonce or str(secrets.randbelow(10**9))
    signer = WeChatSigner()
    signer.add_data(token, ts, nonce)
    return {"signature": signer.signature, "timestamp": ts, "nonce": nonce}


async def push(
    client: httpx.AsyncClient,
    settings: Settings,
    xml: str,
    *,
    safe: bool = False,
    aes_key: str | None = None,
    token: str | None = None,
    **overrides: Any,
) -> httpx.Response:
    """POST a push: plain, or encrypted with `WeChatCrypto.encrypt_message` like WeChat's safe mode.

    `token` and `aes_key` sign and encrypt as another account would; `overrides` replace query fields.
    """
    signer = settings.model_copy(
        update={
            "official_account_token": token or settings.official_account_token,
            "official_account_aes_key": aes_key or settings.official_account_aes_key,
        }
    )
    ts, nonce = overrides.pop("timestamp", None), overrides.pop("nonce", None)
    params, body = signed_push(signer, xml, safe=safe, nonce=nonce, timestamp=None if ts is None else str(ts))
    params.update({k: str(v) for k, v in overrides.items()})
    return await client.post(PATH, params=params, content=body.encode(), headers={"Content-Type": "text/xml"})
