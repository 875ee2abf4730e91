"""Which channel an identity belongs to, from the appids configured per channel."""

from __future__ import annotations

from app.domain import Channel, IdentityKind
from app.settings import Settings


def appid_channels(settings: Settings) -> dict[str, Channel]:
    """The configured appids, each naming its channel."""
    pairs = (
        (settings.mini_program_appid, Channel.MINI_PROGRAM),
        (settings.official_account_appid, Channel.OFFICIAL_ACCOUNT),
        (settings.app_wechat_appid, Channel.APP),
    )
    return {appid: channel for appid, channel in pairs if appid}


def identity_channel(kind: IdentityKind, namespace: str, settings: Settings) -> Channel | None:
    """OPENIDs belong to their appid's channel, APP user ids to the APP; the rest to none."""
    if kind is IdentityKind.OPENID:
        return appid_channels(settings).get(namespace)
    if kind is IdentityKind.APP_USER_ID:
        return Channel.APP
    return None


def channel_identities(channel: Channel, settings: Settings) -> tuple[list[str], list[tuple[str, str]]]:
    """What `identity_channel` gives to `channel`, for SQL: kinds of any namespace, and (kind,
    namespace) pairs. A service's scope in one statement (app/stores/consents.py)."""
    kinds = [IdentityKind.APP_USER_ID.value] if channel is Channel.APP else []
    appids = appid_channels(settings)
    return kinds, [(IdentityKind.OPENID.value, appid) for appid, c in appids.items() if c is channel]
