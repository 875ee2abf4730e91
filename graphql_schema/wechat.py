"""WeChat logins and phone binding (issue 6); the fields exist so clients can build against them."""

from __future__ import annotations

import strawberry

from graphql_schema.common import not_yet
from graphql_schema.enums import Channel
from graphql_schema.identity import User
from graphql_schema.permissions import AUTHENTICATED
from graphql_schema.sessions import Session


@strawberry.type
class WechatMutation:
    @strawberry.mutation(
        description="Mini program (wx.login code) or APP (WeChat SDK code) login: an end-user session."
    )
    def wechat_login(self, channel: Channel, code: str) -> Session:
        raise not_yet("wechatLogin", 6)

    @strawberry.mutation(
        description="Send an SMS code to verify a phone (official account and APP binding).",
        permission_classes=AUTHENTICATED,
    )
    def request_phone_code(self, phone: str) -> bool:
        raise not_yet("requestPhoneCode", 6)

    @strawberry.mutation(
        description="Bind a verified phone to the signed-in user: smsCode, a mini program phone code, "
        "or the legacy encryptedData + iv.",
        permission_classes=AUTHENTICATED,
    )
    def bind_phone(
        self,
        phone: str | None = None,
        sms_code: str | None = None,
        wechat_phone_code: str | None = None,
        encrypted_data: str | None = None,
        iv: str | None = None,
    ) -> User:
        raise not_yet("bindPhone", 6)
