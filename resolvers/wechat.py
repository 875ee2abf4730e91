"""WeChat logins, phone logins and phone binding: an end user's own doors."""

from __future__ import annotations

from app.auth.authenticate import AuthResult
from app.auth.principal import Principal, PrincipalKind
from app.context import RequestContext
from app.domain import Channel, UserRecord
from app.errors import Forbidden, Unauthenticated
from app.services.accounts import Accounts, Grant


def _accounts(ctx: RequestContext) -> Accounts:
    outside = ctx.integrations
    return Accounts(
        settings=ctx.settings,
        wechat=outside.wechat,
        codes=outside.phone_codes,
        write=ctx.write,
        read=ctx.read,
    )


def _caller(ctx: RequestContext) -> str:
    """Who asks, for abuse limits: a known caller by name, an anonymous one by address."""
    if ctx.auth.error:
        raise Unauthenticated(ctx.auth.error)
    principal = ctx.auth.principal
    return principal.actor if principal is not None else f"ip:{ctx.client or 'unknown'}"


def _signed_in(ctx: RequestContext, grant: Grant) -> Grant:
    """The rest of this request (the Session's `user`) is read as the person who just signed in."""
    ctx.auth = AuthResult(Principal(kind=PrincipalKind.END_USER, user_id=grant.user.id))
    return grant


async def wechat_login(ctx: RequestContext, *, channel: Channel, code: str) -> Grant:
    """Anyone may sign in: WeChat vouches for who they are."""
    _caller(ctx)
    return _signed_in(ctx, await _accounts(ctx).wechat_login(channel, code))


async def request_phone_code(ctx: RequestContext, *, phone: str) -> bool:
    """Anyone may ask (phone login needs it), within the per-phone and per-caller limits."""
    await _accounts(ctx).request_phone_code(phone, requester=_caller(ctx))
    return True


async def phone_login(ctx: RequestContext, *, phone: str, sms_code: str) -> Grant:
    _caller(ctx)
    return _signed_in(ctx, await _accounts(ctx).phone_login(phone, sms_code))


async def bind_phone(
    ctx: RequestContext,
    *,
    phone: str | None,
    sms_code: str | None,
    wechat_phone_code: str | None,
    encrypted_data: str | None,
    iv: str | None,
) -> UserRecord:
    """Only the person proves their phone: a signed-in end user, for themselves."""
    principal = ctx.principal
    if principal.kind is not PrincipalKind.END_USER or principal.user_id is None:
        raise Forbidden("only a signed-in end user binds a phone (their own)")
    return await _accounts(ctx).bind_phone(
        principal.user_id,
        phone=phone,
        sms_code=sms_code,
        wechat_phone_code=wechat_phone_code,
        encrypted_data=encrypted_data,
        iv=iv,
    )
