"""Official-account pushes: verify, decrypt (safe mode), parse safely, and name them.

XML from the network is parsed with defusedxml first (no DTDs, no entities: no expansion bombs,
no external fetches); only a document that passes is handed to wechatpy.
"""

from __future__ import annotations

import binascii
import struct
import time
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import (
    BaseEvent,
    ClickEvent,
    ScanEvent,
    SubscribeEvent,
    SubscribeScanEvent,
    TemplateSendJobFinishEvent,
    UnsubscribeEvent,
    ViewEvent,
    register_event,
)
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.utils import check_signature


@register_event("subscribe_msg_popup_event")
class SubscribeMsgPopupEvent(BaseEvent):  # type: ignore[misc]
    """The subscribe-message popup's answers (wechatpy 1.8 does not know this event)."""

    event = "subscribe_msg_popup_event"

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """One {templateId, status, scene} per template the popup asked about."""
        lists = (self._data.get("SubscribeMsgPopupEvent") or {}).get("List") or []
        items = lists if isinstance(lists, list) else [lists]
        return [
            {
                "templateId": i.get("TemplateId"),
                "status": i.get("SubscribeStatusString"),
                "scene": i.get("PopupScene"),
            }
            for i in items
            if isinstance(i, dict)
        ]


class PushRejected(Exception):
    """A push we refuse: 403 when it is not WeChat's (signature, age), 400 when it is not readable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Push:
    """A verified push: its XML as WeChat meant it (decrypted) and the message wechatpy reads from it."""

    xml: str
    message: BaseMessage
    encrypted: bool

    @property
    def dedupe_key(self) -> str:
        """WeChat's retries of one push share it: MsgId, else FromUserName|CreateTime|Event."""
        data = self.message._data
        if data.get("MsgId"):
            return f"msg:{data['MsgId']}"
        return f"{data.get('FromUserName', '')}|{data.get('CreateTime', '')}|{data.get('Event', '')}"[:200]


def _root(body: bytes | str) -> Element:
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise PushRejected(400, f"the body is not acceptable XML: {exc}") from exc
    if root.tag != "xml":
        raise PushRejected(400, "the body is not a WeChat push (<xml> root expected)")
    return root


def verify_request(token: str, params: dict[str, str], *, max_age: int, now: float | None = None) -> None:
    """The query's signature (token, timestamp, nonce) and the timestamp's age."""
    signature, timestamp, nonce = (params.get(k, "") for k in ("signature", "timestamp", "nonce"))
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException as exc:
        raise PushRejected(403, "bad signature") from exc
    if max_age > 0:
        if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > max_age:
            raise PushRejected(403, f"the signed timestamp is not within {max_age} s of now (a replay?)")


def open_push(body: bytes, params: dict[str, str], *, token: str, aes_key: str | None, appid: str) -> Push:
    """Check, decrypt (when `encrypt_type=aes`) and parse a push whose request was verified."""
    outer = _root(body)
    encrypted = params.get("encrypt_type", "raw").lower() == "aes"
    if encrypted:
        if not aes_key:
            raise PushRejected(400, "a safe-mode push, but TROIKA_OFFICIAL_ACCOUNT_AES_KEY is not set")
        if outer.findtext("Encrypt") is None:
            raise PushRejected(400, "a safe-mode push without <Encrypt>")
        crypto = WeChatCrypto(token, aes_key, appid)
        try:
            xml = crypto.decrypt_message(
                body.decode("utf-8"), params.get("msg_signature", ""), params.get("timestamp", ""),
                params.get("nonce", ""),
            )  # fmt: skip
        except InvalidSignatureException as exc:
            raise PushRejected(403, "bad msg_signature") from exc
        except (InvalidAppIdException, ValueError, KeyError, IndexError, struct.error, binascii.Error) as exc:
            raise PushRejected(
                400, "the push does not decrypt for this account (check TROIKA_OFFICIAL_ACCOUNT_AES_KEY)"
            ) from exc
        _root(xml)
    else:
        xml = body.decode("utf-8", errors="strict")
    if not _root(xml).findtext("MsgType"):
        raise PushRejected(400, "the push has no MsgType")
    return Push(xml=xml, message=parse_message(xml), encrypted=encrypted)


def behaviour(message: BaseMessage) -> tuple[str, dict[str, Any]] | None:
    """The behaviour event a push records in the OFFICIAL_ACCOUNT store, or None (not behaviour)."""
    if isinstance(message, SubscribeScanEvent):
        return "subscribe", {"scene": message.scene_id, "ticket": message.ticket}
    if isinstance(message, SubscribeEvent):
        return "subscribe", {}
    if isinstance(message, UnsubscribeEvent):
        return "unsubscribe", {}
    if isinstance(message, ScanEvent):
        return "scan", {"scene": message.scene_id, "ticket": message.ticket}
    if isinstance(message, ClickEvent):
        return "menu_click", {"key": message.key}
    if isinstance(message, ViewEvent):
        return "menu_view", {"url": message.url}
    if isinstance(message, TemplateSendJobFinishEvent):
        return "template_send_finished", {"msgId": message.id, "status": message.status}
    if isinstance(message, SubscribeMsgPopupEvent):
        return "subscribe_message_popup", {"subscriptions": message.subscriptions}
    return None


# Behaviour of someone who (still) follows: worth asking WeChat for their unionid.
FOLLOWING = frozenset({"subscribe", "scan", "menu_click", "menu_view", "subscribe_message_popup"})
