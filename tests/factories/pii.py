"""A person with every kind of data Troika holds, made through the public doors, for export and erasure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import (
    app_order,
    app_reservation,
    app_user,
    cart,
    event,
    ingest,
    mp_order,
    openid,
)
from tests.factories.entitlements import grant_membership, grant_role, set_consent
from tests.factories.identity import link
from tests.factories.wechat import BIND_PHONE, event_xml, sms_code, wechat_login
from tests.factories.wechat_push import push
from tests.helpers import Gql
from tests.identity.test_merge import UNLINK

POINTS = """
mutation ($id: ID!, $n: Int!) {
  adjustPoints(userId: $id, points: $n, reason: "welcome", sourceChannel: APP) { id }
}
"""


@dataclass
class Everything:
    """Who the person is, and what of theirs was written where."""

    user_id: str  # the survivor
    absorbed_id: str  # a user merged into it
    token: str
    phone: str  # E.164
    account: str  # their APP user id
    old_account: str  # an APP user id they held once and unlinked: its records are still theirs
    mp_openid: str
    oa_openid: str
    admin: str
    app_service: str


async def everything(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    *,
    name: str,
    national: str,
) -> Everything:
    """A person: mini program login (a session key), an APP account merged in, a proven phone (an SMS
    code), an official-account follow (an inbox push), an unlinked old account, consents, a
    membership, points, a role, orders in two channels, cart lines, behaviour, a rejected record."""
    s = app.state.settings
    admin = await operator_key(app, "admin")
    app_service = await service_key(app, "APP")
    mp_service = await service_key(app, "MINI_PROGRAM")
    session = await wechat_login(gql, "MINI_PROGRAM", name)
    user_id, token = session["user"]["id"], session["token"]
    mp_openid = fake.openid(s.mini_program_appid, name)
    account, old_account = f"{name}-app", f"{name}-old"
    # Records under an account they later unlink (orphaned: still theirs), and under the new one.
    await link(gql, admin, kind="APP_USER_ID", value=old_account, user_id=user_id)
    await ingest(
        client, app_service, "APP", [app_order(f"{name}-o0", app_user(old_account), order_no=f"{name}-A0")]
    )
    await gql(
        UNLINK, {"userId": user_id, "identity": {"kind": "APP_USER_ID", "value": old_account}}, token=admin
    )
    # An APP sign-up of their own, with consents and points, later merged into the mini program user.
    absorbed = (await link(gql, admin, kind="APP_USER_ID", value=account))["user"]["id"]
    await set_consent(gql, user_token(app, absorbed), "LOCAL_STORAGE", granted=True, source="APP")
    await gql(POINTS, {"id": absorbed, "n": 30}, token=app_service)
    merged = await link(gql, admin, kind="APP_USER_ID", value=account, user_id=user_id)
    assert merged["merge"]["absorbedId"] == absorbed
    code = await sms_code(gql, caplog, national, f"{national[:3]}****{national[-4:]}")
    await gql(BIND_PHONE, {"phone": national, "sms": code}, token=token)
    await set_consent(gql, token, "MARKETING", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM")
    await set_consent(gql, token, "PUSH", granted=False, channel="APP", source="APP", policy_version="v2")
    await grant_membership(gql, app_service, user_id=user_id, tier="GOLD", source="APP")
    await gql(POINTS, {"id": user_id, "n": 20}, token=app_service)
    await grant_role(gql, admin, user_id=user_id, role="customer_service")
    phone = {"kind": "PHONE", "value": national}
    await ingest(
        client,
        app_service,
        "APP",
        [
            app_order(f"{name}-o1", phone, order_no=f"{name}-A1"),
            app_order(f"{name}-o2", app_user(account), order_no=f"{name}-A2", status=3),
            cart(f"{name}-c1", app_user(account), sku="SKU-1", quantity=2),
            app_reservation(f"{name}-r1", app_user(account), reservation_no=f"{name}-R1"),
            event(f"{name}-e1", phone, name="page_view", properties={"tags": ["spa"]}),
            cart(f"{name}-bad", app_user(account), sku="SKU-2", quantity=-1),  # rejected, kept
        ],
    )
    mp = openid(s.mini_program_appid, mp_openid)
    await ingest(client, mp_service, "MINI_PROGRAM", [mp_order(f"{name}-m1", mp, order_id=f"{name}-MP1")])
    [followed] = fake.follow(name)
    await link(gql, admin, kind="OPENID", namespace=s.official_account_appid, value=followed, user_id=user_id)
    await push(client, s, event_xml(followed, "CLICK", EventKey="MENU_NEWS"))
    await app.state.wechat_inbox.drain()
    return Everything(
        user_id,
        absorbed,
        token,
        f"+86{national}",
        account,
        old_account,
        mp_openid,
        followed,
        admin,
        app_service,
    )


def non_empty(document: dict[str, Any]) -> list[str]:
    """The keys of a document whose value is empty (a list, a dict, zero)."""
    return sorted(k for k, v in document.items() if v in ([], {}, 0, None))
