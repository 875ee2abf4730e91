"""A proven phone (bindPhone, phoneLogin) replaces, merges or, for two people, recycles the number."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, user_token
from tests.factories.identity import LINK, link, new_user
from tests.factories.wechat import BIND_PHONE, HISTORY, PHONE_LOGIN, sms_code, wechat_login
from tests.helpers import Gql

PHONE, MASKED = "13800138111", "138****8111"


async def _bind_by_sms(
    gql: Gql, caplog: pytest.LogCaptureFixture, token: str, phone: str, masked: str
) -> dict[str, Any]:
    code = await sms_code(gql, caplog, phone, masked)
    user: dict[str, Any] = (await gql(BIND_PHONE, {"phone": phone, "sms": code}, token=token))["bindPhone"]
    return user


async def test_a_new_phone_replaces_the_previous_one_and_the_history_says_so(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin", "pii_reader")
    user_id = await new_user(gql, admin, phone="13800138000")
    user = await _bind_by_sms(gql, caplog, user_token(app, user_id), PHONE, MASKED)
    assert user["id"] == user_id
    assert user["phone"] == MASKED  # the user sees their own number masked, like everyone without pii
    phones = [i for i in user["identities"] if i["kind"] == "PHONE"]
    assert [(p["value"], p["verified"], p["linkedBy"]) for p in phones] == [
        (MASKED, True, "verified: phone verified by SMS")
    ]
    history = (await gql(HISTORY, {"id": user_id}, token=admin))["user"]["identityHistory"]
    closed = [e for e in history if e["action"] == "unlink"]
    assert [(e["value"], e["rule"]) for e in closed] == [("+8613800138000", "replaced")]
    assert "+8613800138111" in closed[0]["source"] or "138****8111" in closed[0]["source"]


async def test_a_phone_held_by_a_compatible_user_merges_the_two(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin")
    holder = await new_user(gql, admin, phone=PHONE)  # e.g. an APP account, known by its phone
    await link(gql, admin, kind="APP_USER_ID", value="A-77", user_id=holder)
    mp = app.state.settings.mini_program_appid
    newcomer = (await link(gql, admin, kind="OPENID", namespace=mp, value="o-77"))["user"]["id"]
    user = await _bind_by_sms(gql, caplog, user_token(app, newcomer), PHONE, MASKED)
    assert user["id"] == holder  # the older user survives; the newcomer's token resolves to it
    kinds = sorted(i["kind"] for i in user["identities"])
    assert kinds == ["APP_USER_ID", "OPENID", "PHONE"]
    assert next(i for i in user["identities"] if i["kind"] == "PHONE")["verified"] is True


async def test_a_phone_held_by_another_person_is_recycled_never_merged(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin", "pii_reader")
    former = await new_user(gql, admin, phone=PHONE)
    await link(gql, admin, kind="APP_USER_ID", value="A-old", user_id=former)
    current = (await link(gql, admin, kind="APP_USER_ID", value="A-new"))["user"]["id"]
    user = await _bind_by_sms(gql, caplog, user_token(app, current), PHONE, MASKED)
    assert user["id"] == current
    assert {i["kind"] for i in user["identities"]} == {"APP_USER_ID", "PHONE"}
    view = "query ($id: ID!) { user(id: $id) { id phone identities { kind value } } }"
    old = (await gql(view, {"id": former}, token=admin))["user"]
    assert old["id"] == former  # no merge
    assert old["phone"] is None
    assert [i["value"] for i in old["identities"]] == ["A-old"]
    history = (await gql(HISTORY, {"id": former}, token=admin))["user"]["identityHistory"]
    recycled = [e for e in history if e["action"] == "unlink"]
    assert [(e["value"], e["rule"]) for e in recycled] == [("+8613800138111", "recycled")]
    assert f"proven by user {current}" in recycled[0]["source"]


async def test_link_identity_asserts_and_never_moves_a_phone(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    holder = await new_user(gql, admin, phone=PHONE)
    await link(gql, admin, kind="APP_USER_ID", value="A-1", user_id=holder)
    other = (await link(gql, admin, kind="APP_USER_ID", value="A-2"))["user"]["id"]
    await gql.error(
        LINK,
        {"userId": other, "identity": {"kind": "PHONE", "value": PHONE}},
        token=admin,
        code="IDENTITY_CONFLICT",
    )
    view = "query ($id: ID!) { user(id: $id) { phone } }"
    assert (await gql(view, {"id": holder}, token=admin))["user"]["phone"] == MASKED


async def test_phone_login_signs_in_the_holder_or_a_new_user(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin")
    holder = await new_user(gql, admin, phone=PHONE)
    code = await sms_code(gql, caplog, PHONE, MASKED)
    session = (await gql(PHONE_LOGIN, {"phone": PHONE, "code": code}, token=None))["phoneLogin"]
    assert session["user"]["id"] == holder
    assert session["user"]["identities"] == [{"kind": "PHONE", "value": MASKED, "verified": True}]
    fresh = await sms_code(gql, caplog, "13900139222", "139****9222")
    newcomer = (await gql(PHONE_LOGIN, {"phone": "13900139222", "code": fresh}, token=None))["phoneLogin"]
    assert newcomer["user"]["id"] != holder
    assert newcomer["user"]["phone"] == "139****9222"


async def test_racing_proofs_of_one_phone_leave_one_holder(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    """Two people of one mini program prove the same number at once: it ends with exactly one."""
    first = await wechat_login(gql, "MINI_PROGRAM", "race-1")
    second = await wechat_login(gql, "MINI_PROGRAM", "race-2")
    await asyncio.gather(
        gql(BIND_PHONE, {"wx": "13700137077:a"}, token=first["token"]),
        gql(BIND_PHONE, {"wx": "13700137077:b"}, token=second["token"]),
    )
    admin = await operator_key(app, "admin")
    view = "query ($id: ID!) { user(id: $id) { id phone } }"
    phones = [
        (await gql(view, {"id": s["user"]["id"]}, token=admin))["user"]["phone"] for s in (first, second)
    ]
    assert sorted(phones, key=str) == sorted(["137****7077", None], key=str)
