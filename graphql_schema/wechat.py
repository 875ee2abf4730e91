"""WeChat logins, phone logins and phone binding."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.services.accounts import Grant
from graphql_schema.enums import Channel
from graphql_schema.identity import User
from graphql_schema.permissions import AUTHENTICATED
from graphql_schema.sessions import Session
from resolvers import wechat as resolve

Ctx = Info[RequestContext, None]


def session_of(grant: Grant) -> Session:
    return Session.of(grant.issued, grant.user)


@strawberry.type
class WechatMutation:
    @strawberry.mutation(
        description="Mini program (wx.login code) or APP (WeChat SDK code) login: an end-user session. "
        "OFFICIAL_ACCOUNT takes a web authorization code (official-account pages)."
    )
    async def wechat_login(self, info: Ctx, channel: Channel, code: str) -> Session:
        return session_of(await resolve.wechat_login(info.context, channel=channel, code=code))

    @strawberry.mutation(
        description="Send an SMS code to verify a phone (official account and APP binding, phone login). "
        "Rate limited per phone and per caller; RATE_LIMITED says when to retry."
    )
    async def request_phone_code(self, info: Ctx, phone: str) -> bool:
        return await resolve.request_phone_code(info.context, phone=phone)

    @strawberry.mutation(
        description="APP account login by phone: a phone proven by an SMS code signs in its holder "
        "(a new user when nobody holds it)."
    )
    async def phone_login(self, info: Ctx, phone: str, sms_code: str) -> Session:
        return session_of(await resolve.phone_login(info.context, phone=phone, sms_code=sms_code))

    @strawberry.mutation(
        description="Bind a verified phone to the signed-in user: smsCode, a mini program phone code, "
        "or the legacy encryptedData + iv. It replaces the user's previous phone; a phone held by "
        "another user merges the two, or, when they cannot be one person, moves here (recycled).",
        permission_classes=AUTHENTICATED,
    )
    async def bind_phone(
        self,
        info: Ctx,
        phone: str | None = None,
        sms_code: str | None = None,
        wechat_phone_code: str | None = None,
        encrypted_data: str | None = None,
        iv: str | None = None,
    ) -> User:
        record = await resolve.bind_phone(
            info.context,
            phone=phone,
            sms_code=sms_code,
            wechat_phone_code=wechat_phone_code,
            encrypted_data=encrypted_data,
            iv=iv,
        )
        return User(record=record)
