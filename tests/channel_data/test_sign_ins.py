"""Sign-ins through Troika: funnel LOGGED_IN in their channel, traits.lastSeenAt, exact under merges,
unmerges and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import SignIn
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key
from tests.factories.identity import link
from tests.factories.wechat import PHONE_LOGIN, sms_code, wechat_login
from tests.helpers import Gql

FUNNEL = """
query ($steps: [FunnelStep!]!, $from: DateTime!, $to: DateTime!) {
  funnel(steps: $steps, from: $from, to: $to, withinDays: 1) { steps { persons } }
}
"""
SEEN = """
query ($id: ID!) {
  user(id: $id) { traits { lastSeenAt } journey { path channels { channel firstSeenAt lastSeenAt } } }
}
"""
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"
ERASE = "mutation ($u: ID!) { eraseUser(userId: $u) { userId removed { store table rows } } }"
EXPORT = "query ($id: ID!) { exportUser(userId: $id) }"
PHONE, MASKED = "13800138555", "138****8555"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _logged_in(gql: Gql, token: str, channel: str | None) -> int:
    """Persons who signed in (in `channel`, or anywhere) in the day around now."""
    now = datetime.now(UTC)
    step: dict[str, Any] = {"action": "LOGGED_IN"} | ({"channel": channel} if channel else {})
    window = {"from": _iso(now - timedelta(days=1)), "to": _iso(now + timedelta(days=1))}
    found = await gql(FUNNEL, {"steps": [step], **window}, token=token)
    persons: int = found["funnel"]["steps"][0]["persons"]
    return persons


async def _sign_ins(app: FastAPI) -> list[tuple[str, str, datetime]]:
    async with app.state.db.read_sessions() as s:
        rows = (
            await s.execute(select(SignIn.identity_ref, SignIn.channel, SignIn.at).order_by(SignIn.id))
        ).all()
    return [(ref, channel, at) for ref, channel, at in rows]


async def _phone_login(gql: Gql, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    code = await sms_code(gql, caplog, PHONE, MASKED)
    session: dict[str, Any] = (await gql(PHONE_LOGIN, {"phone": PHONE, "code": code}, token=None))[
        "phoneLogin"
    ]
    return session


async def test_a_sign_in_counts_as_logged_in_in_its_channel_and_as_last_seen(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = await operator_key(app, "viewer")
    assert await _logged_in(gql, viewer, None) == 0
    session = await wechat_login(gql, "MINI_PROGRAM", "signer")
    assert await _logged_in(gql, viewer, "MINI_PROGRAM") == 1
    assert await _logged_in(gql, viewer, "APP") == 0
    [(ref, channel, at)] = await _sign_ins(app)
    mp = app.state.settings.mini_program_appid
    assert (ref, channel) == (f"OPENID|{mp}|{fake_wechat.openid(mp, 'signer')}", "MINI_PROGRAM")
    user = (await gql(SEEN, {"id": session["user"]["id"]}, token=viewer))["user"]
    assert _at(user["traits"]["lastSeenAt"]) == at
    assert user["journey"]["path"] == ["MINI_PROGRAM"]
    # phoneLogin is the APP's door: an APP sign-in, by the phone (its blind index, never in clear).
    await _phone_login(gql, caplog)
    assert await _logged_in(gql, viewer, "APP") == 1
    assert await _logged_in(gql, viewer, None) == 2
    (ref, channel, _) = (await _sign_ins(app))[-1]
    assert channel == "APP"
    assert ref.startswith("PHONE||")
    assert PHONE[-8:] not in ref


async def test_merges_unmerges_and_erasure_keep_each_sign_in_with_its_identity(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin")
    x = (await wechat_login(gql, "MINI_PROGRAM", "merged"))["user"]["id"]
    y = (await _phone_login(gql, caplog))["user"]["id"]
    (_, _, x_at), (_, _, y_at) = await _sign_ins(app)
    assert x_at < y_at
    # The phone joins X: one person, signed in in both channels, last seen at Y's sign-in.
    merge = (await link(gql, admin, kind="PHONE", value=PHONE, user_id=x))["merge"]
    assert merge is not None
    assert merge["survivorId"] == x
    assert await _logged_in(gql, admin, None) == 1
    person = (await gql(SEEN, {"id": x}, token=admin))["user"]
    assert _at(person["traits"]["lastSeenAt"]) == y_at
    assert {c["channel"] for c in person["journey"]["channels"]} == {"MINI_PROGRAM", "APP"}
    # Unmerged, each side has its own sign-ins back.
    await gql(UNMERGE, {"id": merge["id"]}, token=admin)
    assert await _logged_in(gql, admin, None) == 2
    assert _at((await gql(SEEN, {"id": x}, token=admin))["user"]["traits"]["lastSeenAt"]) == x_at
    assert _at((await gql(SEEN, {"id": y}, token=admin))["user"]["traits"]["lastSeenAt"]) == y_at
    # The person's export lists their own sign-ins.
    exported = (await gql(EXPORT, {"id": y}, token=admin))["exportUser"]
    assert [(e["channel"], _at(e["at"])) for e in exported["signIns"]] == [("APP", y_at)]
    # Erasing Y removes its sign-ins and only those.
    erased = (await gql(ERASE, {"u": y}, token=admin))["eraseUser"]
    assert {"store": "hub", "table": "sign_ins", "rows": 1} in erased["removed"]
    assert [at for _, _, at in await _sign_ins(app)] == [x_at]
    assert await _logged_in(gql, admin, None) == 1
