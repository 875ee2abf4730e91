"""Phones at rest: a copy of the database holds no phone number in clear, anywhere; the API still
finds, shows (to PII readers) and masks them."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.channel_models import RawRecord
from app.db.models import Identity, IdentityEdge
from app.pii import PHONE
from app.sealing import keyring_for
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, cart, event, ingest
from tests.factories.identity import link, new_user
from tests.factories.wechat import BIND_PHONE, sms_code, wechat_login
from tests.helpers import Gql
from tests.pii.raw import dump, places

BY_PHONE = """
query ($phone: String!) {
  user(identity: {kind: PHONE, value: $phone}) {
    id phone identities { kind value } identityHistory { action kind value }
    orders { nodes { sourceId } } cart { items { sku } } behavior { nodes { type } }
  }
}
"""
# Two numbers this test writes everywhere it can; neither may be found in the database.
FIRST, SECOND = "13800138321", "13900139654"


def phone_record(record_id: str, phone: str) -> dict[str, object]:
    return app_order(record_id, {"kind": "PHONE", "value": phone}, order_no=f"A-{record_id}")


async def test_no_phone_is_kept_in_clear_anywhere(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    database_url: str,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = await operator_key(app, "admin", "pii_reader")
    service = await service_key(app, "APP")
    # Asserted by an operator; the history gets its link; an APP account merged in through it.
    user_id = await new_user(gql, admin, phone=f"+86{FIRST}")
    other = (await link(gql, admin, kind="APP_USER_ID", value="pii-1"))["user"]["id"]
    await ingest(
        client,
        service,
        "APP",
        [phone_record("p1", FIRST), cart("p2", app_user("pii-1"), sku="S", quantity=1)],
    )
    await link(gql, admin, kind="PHONE", value=FIRST, user_id=other)  # merges the two
    # Records under the phone: an order, a cart line, an event, and a rejected one naming it twice.
    phone = {"kind": "PHONE", "value": f"+86{FIRST}"}
    bad = app_order("p5", phone, order_no="A-p5", status=9)
    bad["data"]["note"] = f"call {FIRST}"
    report = await ingest(
        client,
        service,
        "APP",
        [
            phone_record("p3", f"+86 {FIRST[:3]} {FIRST[3:7]} {FIRST[7:]}"),
            event("p4", phone, name="click"),
            bad,
        ],
    )
    assert (report["accepted"], report["rejected"]) == (2, 1)
    seen = (await gql(BY_PHONE, {"phone": FIRST}, token=admin))["user"]
    assert {o["sourceId"] for o in seen["orders"]["nodes"]} == {"A-p1", "A-p3"}  # found by its index
    assert [e["type"] for e in seen["behavior"]["nodes"]] == ["click"]
    # The person proves another number by SMS (a code, a replaced phone), and signs in to the
    # mini program (a sealed session key).
    session = await wechat_login(gql, "MINI_PROGRAM", "pii")
    await link(gql, admin, kind="UNIONID", value=fake_wechat.unionid("pii") or "", user_id=user_id)
    code = await sms_code(gql, caplog, SECOND, f"{SECOND[:3]}****{SECOND[-4:]}")
    await gql(BIND_PHONE, {"phone": SECOND, "sms": code}, token=user_token(app, user_id))
    assert session["user"]["id"]

    # The API: found by either form of the number, shown to a PII reader, masked for others.
    seen = (await gql(BY_PHONE, {"phone": SECOND}, token=admin))["user"]
    assert seen["id"] == user_id
    assert seen["phone"] == f"+86{SECOND}"
    history = {(e["action"], e["value"]) for e in seen["identityHistory"] if e["kind"] == "PHONE"}
    assert {("link", f"+86{FIRST}"), ("unlink", f"+86{FIRST}"), ("link", f"+86{SECOND}")} <= history
    assert seen["orders"]["nodes"] == []  # those were the replaced number's
    viewer = await operator_key(app, "viewer")
    masked = (await gql(BY_PHONE, {"phone": f"+86{SECOND}"}, token=viewer))["user"]
    assert masked["phone"] == "139****9654"

    # The database: neither number, in any form, in any cell of any table.
    tables = await dump(database_url)
    for number in (FIRST, SECOND):
        assert places(tables, number) == [], number
        assert places(tables, f"{number[:3]} {number[3:7]}") == []
    # What is there instead: an index and a ciphertext that opens with the keys.
    keyring = keyring_for(app.state.settings)
    phones = [r for r in tables["identities"] if r["kind"] == "PHONE"]
    assert [(r["value"], keyring.unseal(r["sealed"], purpose=PHONE)) for r in phones] == [
        (keyring.index(f"+86{SECOND}", purpose=PHONE), f"+86{SECOND}")
    ]
    refs = {r["identity_ref"] for r in tables["ch_orders"]}
    assert f"PHONE||{keyring.index(f'+86{FIRST}', purpose=PHONE)}" in refs
    [letter] = tables["ch_dead_letters"]
    assert letter["identity_ref"] == f"PHONE||{keyring.index(f'+86{FIRST}', purpose=PHONE)}"


async def test_raw_records_keep_the_sealed_number_for_reprocessing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    service = await service_key(app, "APP")
    await ingest(
        client,
        service,
        "APP",
        [phone_record("r1", FIRST), cart("r2", app_user("raw-1"), sku="S", quantity=1)],
    )
    async with app.state.db.read_sessions() as session:
        rows = {r.source_id: r for r in (await session.execute(select(RawRecord))).scalars()}
        edges = (await session.execute(select(IdentityEdge.value, IdentityEdge.sealed))).all()
        held = (await session.execute(select(Identity.value).where(Identity.kind == "APP_USER_ID"))).scalars()
    keyring = keyring_for(app.state.settings)
    by_phone, by_account = rows["r1"], rows["r2"]
    assert by_phone.payload["identity"] == {"kind": "PHONE", "value": None}
    assert keyring.unseal(by_phone.identity_sealed or "", purpose=PHONE) == FIRST  # as it was sent
    assert by_phone.payload["data"] == phone_record("r1", FIRST)["data"]
    # Other kinds are kept as sent: an APP account id is the channel's own key, not a phone.
    assert (by_account.payload["identity"], by_account.identity_sealed) == (app_user("raw-1"), None)
    assert list(held) == ["raw-1"]
    assert {keyring.unseal(s, purpose=PHONE) for _, s in edges if s} == {f"+86{FIRST}"}
