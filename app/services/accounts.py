"""Sign-in and phone proofs: WeChat's answer first (no transaction held), then one write."""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from wechatpy.crypto import WeChatWxaCrypto
from wechatpy.exceptions import InvalidAppIdException

from app.db.types import utcnow
from app.domain import Channel, IdentityKey, IdentityKind, LinkOutcome, UserRecord
from app.errors import DomainError, IdentityConflict, InvalidInput
from app.pii import ref_of
from app.sealing import keyring_for
from app.services import sessions
from app.services.changes import Topic, users_changed
from app.services.identity import IdentityGraph
from app.services.identity_rules import LinkRequest, make_key
from app.services.phone_codes import PhoneCodes
from app.services.phone_proof import PhoneProof
from app.services.sessions import IssuedSession
from app.settings import Settings
from app.stores import identity as identity_store
from app.stores import sign_ins
from app.stores import wechat as store
from app.wechat.api import WeChatApi, WeChatError

log = logging.getLogger("troika.accounts")
SESSION_KEY = "wechat-session-key"


@dataclass(frozen=True)
class Grant:
    """An end-user session (access and refresh tokens), and whose it is."""

    issued: IssuedSession
    user: UserRecord


T = TypeVar("T")


class Write(Protocol):
    """Runs `work` in one write transaction (again, whole, if the database aborts it)."""

    async def __call__(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T: ...


class Accounts:
    """End users' own doors: WeChat logins, phone logins, binding a proven phone."""

    def __init__(
        self,
        *,
        settings: Settings,
        wechat: WeChatApi,
        codes: PhoneCodes,
        write: Write,
        read: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    ) -> None:
        self.settings = settings
        self.wechat = wechat
        self.codes = codes
        self.write = write
        self.read = read

    async def _signed_in(
        self, session: AsyncSession, user: UserRecord, key: IdentityKey, channel: Channel
    ) -> None:
        """The sign-in, by the identity it was made with (it follows that identity through merges)."""
        ref = ref_of(keyring_for(self.settings), key)
        await sign_ins.record(session, identity_ref=ref, channel=channel, at=utcnow())
        # The person was seen: their traits and journey changed like on any behaviour record.
        await users_changed(session, [user.id], topics=[Topic.BEHAVIOR])

    async def _grant(self, user: UserRecord) -> Grant:
        issued = await self.write(lambda session: sessions.issue(session, user.id, self.settings))
        return Grant(issued, user)

    def phone_key(self, raw: str) -> IdentityKey:
        return make_key(IdentityKind.PHONE, raw, None, phone_region=self.settings.phone_default_region)

    # -- WeChat logins -----------------------------------------------------------------------
    async def wechat_login(self, channel: Channel, code: str) -> Grant:
        """Link the openid (and unionid) WeChat vouches for; a mini program keeps its session key."""
        if not code.strip() or len(code) > 128:
            raise InvalidInput("`code` must be the code WeChat gave the client", field="code")
        if channel is Channel.MINI_PROGRAM:
            answer, endpoint = await self.wechat.code_to_session(code), "code2session"
        else:
            answer, endpoint = await self.wechat.oauth_login(channel, code), "sns/oauth2/access_token"
        appid = self.wechat.client_appid(channel)
        openid, unionid = str(answer["openid"]), answer.get("unionid")
        keys = [make_key(IdentityKind.OPENID, openid, appid, phone_region="CN")]
        if unionid:
            keys.append(make_key(IdentityKind.UNIONID, str(unionid), None, phone_region="CN"))
        what = "openid and unionid" if unionid else "openid"
        request = LinkRequest(
            keys, None, f"wechat:{channel.value}", "wechat", f"{what} from {endpoint}", verified=True
        )

        async def link(session: AsyncSession) -> LinkOutcome:
            graph = IdentityGraph(session)
            try:
                outcome = await graph.link(request)
            except IdentityConflict as exc:
                # The login itself is sound; the unionid clashes with the graph. Sign in by the openid.
                log.warning("%s login: unionid not linked: %s", channel.value, exc.message)
                outcome = await graph.link(
                    LinkRequest(
                        keys[:1], None, request.actor, "wechat", f"openid from {endpoint}", verified=True
                    )
                )
            if channel is Channel.MINI_PROGRAM:
                sealed = keyring_for(self.settings).seal(str(answer["session_key"]), purpose=SESSION_KEY)
                await store.save_session_key(
                    session, appid=appid, openid=openid, sealed_key=sealed, at=utcnow()
                )
            assert outcome.user is not None
            await self._signed_in(session, outcome.user, keys[0], channel)
            return outcome

        outcome = await self.write(link)
        assert outcome.user is not None
        return await self._grant(outcome.user)

    # -- phones ------------------------------------------------------------------------------
    async def request_phone_code(self, phone: str, *, requester: str) -> None:
        key = self.phone_key(phone)
        code = await self.write(lambda session: self.codes.issue(session, key, requester=requester))
        await self.codes.deliver(key, code)

    async def phone_login(self, phone: str, sms_code: str) -> Grant:
        """Sign in by a phone proven by SMS: its holder, or a new user."""
        key = self.phone_key(phone)

        async def prove(session: AsyncSession) -> PhoneProof:
            await self.codes.consume(session, key, sms_code)
            proof = await IdentityGraph(session).prove_phone(
                user_id=None, phone=key, actor="phone-login", source="phone verified by SMS"
            )
            # Phone login is the APP's account door.
            await self._signed_in(session, proof.user, key, Channel.APP)
            return proof

        return await self._grant((await self.write(prove)).user)

    async def bind_phone(
        self,
        user_id: int,
        *,
        phone: str | None,
        sms_code: str | None,
        wechat_phone_code: str | None,
        encrypted_data: str | None,
        iv: str | None,
    ) -> UserRecord:
        """Exactly one proof: an SMS code, a mini program phone code, or the legacy encryptedData."""
        given = [
            n
            for n, v in (
                ("smsCode", sms_code),
                ("wechatPhoneCode", wechat_phone_code),
                ("encryptedData", encrypted_data),
            )
            if v
        ]
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one proof: phone + smsCode, wechatPhoneCode, or encryptedData + iv"
            )
        actor = f"user:{user_id}"
        if sms_code:
            if not phone:
                raise InvalidInput("`smsCode` proves `phone`: give both", field="phone")
            key = self.phone_key(phone)

            async def prove(session: AsyncSession) -> PhoneProof:
                await self.codes.consume(session, key, sms_code)
                return await IdentityGraph(session).prove_phone(
                    user_id=user_id, phone=key, actor=actor, source="phone verified by SMS"
                )

            return (await self.write(prove)).user
        if wechat_phone_code:
            info = (await self.wechat.phone_number(wechat_phone_code)).get("phone_info") or {}
            key, source = self._wechat_phone(info), "phone from getuserphonenumber"
        else:
            if not iv:
                raise InvalidInput("`encryptedData` comes with its `iv`", field="iv")
            assert encrypted_data is not None
            key, source = (
                self._wechat_phone(await self._decrypt(user_id, encrypted_data, iv)),
                "phone from encryptedData",
            )
        proof = await self.write(
            lambda session: IdentityGraph(session).prove_phone(
                user_id=user_id, phone=key, actor=actor, source=source
            )
        )
        return proof.user

    def _wechat_phone(self, info: dict[str, Any]) -> IdentityKey:
        """WeChat's phone_info (countryCode a number or a string) as the graph's phone."""
        watermark = info.get("watermark") or {}
        if watermark.get("appid") not in (None, self.settings.mini_program_appid):
            raise WeChatError(
                "the phone number was issued to another mini program", code="WECHAT_DECRYPT_FAILED"
            )
        number, country = info.get("purePhoneNumber"), info.get("countryCode")
        if not number:
            raise DomainError("WeChat's data holds no phone number", code="WECHAT_NO_PHONE")
        return self.phone_key(f"+{country}{number}" if country not in (None, "") else str(number))

    async def _decrypt(self, user_id: int, encrypted_data: str, iv: str) -> dict[str, Any]:
        """The legacy path: decrypt with the session key of the user's mini program login."""
        appid = self.wechat.client_appid(Channel.MINI_PROGRAM)
        async with self.read() as session:
            user = (await identity_store.resolve_users(session, [user_id])).get(user_id)
            held = await identity_store.identities_by_user_ids(session, [user.id]) if user else {}
            openids = [
                i.value
                for ids in held.values()
                for i in ids
                if i.kind is IdentityKind.OPENID and i.namespace == appid
            ]
            sealed = (
                await store.sealed_session_key(session, appid=appid, openid=openids[0]) if openids else None
            )
        key = keyring_for(self.settings).try_unseal(sealed, purpose=SESSION_KEY) if sealed else None
        if key is None:
            raise WeChatError(
                "no mini program session for this user: sign in with "
                "wechatLogin(channel: MINI_PROGRAM) first",
                code="WECHAT_SESSION_MISSING",
            )
        try:
            data: dict[str, Any] = WeChatWxaCrypto(key, iv, appid).decrypt_message(encrypted_data)
        except InvalidAppIdException as exc:
            raise WeChatError(
                "the data was encrypted for another mini program (watermark appid)",
                code="WECHAT_DECRYPT_FAILED",
            ) from exc
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
            raise WeChatError(
                "encryptedData does not decrypt with this user's session key (call wx.login again, "
                "then getPhoneNumber)",
                code="WECHAT_DECRYPT_FAILED",
            ) from exc
        return data
