"""Ingestion over HTTP and GraphQL: accepted, duplicate, rejected (kept), order-safe, bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.channel_models import ChannelCartItem, DeadLetter, RawRecord
from app.db.models import Identity, User
from app.ingest.service import DEAD_LETTER
from app.sealing import keyring_for
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.helpers import Gql

ORDERS = """
query ($identity: IdentityInput!) {
  user(identity: $identity) {
    id
    orders { totalCount nodes { channel sourceId status statusCode totalCents currency placedAt updatedAt
                                items { sku name quantity unitPriceCents } } }
  }
}
"""
INGEST = """
mutation ($channel: Channel!, $records: [JSON!]!) {
  ingest(channel: $channel, records: $records) { accepted duplicates rejected results { id status reason } }
}
"""


@pytest.fixture
def mp(app: FastAPI) -> str:
    appid: str = app.state.settings.mini_program_appid
    return appid


async def test_mini_program_order_is_standardized_and_read_back(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, mp: str
) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    report = await ingest(client, key, "MINI_PROGRAM", [mp_order("r1", openid(mp, "o-1"), order_id="MP1001")])
    assert report == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "results": [{"id": "r1", "status": "ACCEPTED", "reason": None}],
    }
    user = (await gql(ORDERS, {"identity": openid(mp, "o-1")}, token=key))["user"]
    [order] = user["orders"]["nodes"]
    assert user["orders"]["totalCount"] == 1
    assert order == {
        "channel": "MINI_PROGRAM",
        "sourceId": "MP1001",
        "status": "PENDING_PAYMENT",
        "statusCode": 0,
        "totalCents": 10000,
        "currency": "CNY",
        "placedAt": "2026-11-20T02:00:00+00:00",
        "updatedAt": "2026-11-20T02:00:00+00:00",
        "items": [{"sku": "A1", "name": "拿铁", "quantity": 2, "unitPriceCents": 5000}],
    }


async def test_replays_are_duplicates(app: FastAPI, client: httpx.AsyncClient, mp: str) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    records = [
        mp_order("r2", openid(mp, "o-2"), order_id="MP2"),
        mp_order("r2", openid(mp, "o-2"), order_id="MP2"),
    ]
    first = await ingest(client, key, "MINI_PROGRAM", records)
    assert [r["status"] for r in first["results"]] == ["ACCEPTED", "DUPLICATE"]
    again = await ingest(client, key, "MINI_PROGRAM", records[:1])
    assert again["duplicates"] == 1
    async with app.state.db.read_sessions() as session:
        stored = (await session.execute(select(RawRecord.source_id, RawRecord.payload))).all()
    assert [(s.source_id, s.payload["data"]["orderId"]) for s in stored] == [("r2", "MP2")]


async def test_rejected_record_is_kept_with_its_reason(
    app: FastAPI, client: httpx.AsyncClient, mp: str
) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    bad = mp_order("r3", openid(mp, "o-3"), order_id="MP3", status="已退款")
    good = mp_order("r4", openid(mp, "o-3"), order_id="MP4")
    report = await ingest(client, key, "MINI_PROGRAM", [bad, good])
    assert (report["accepted"], report["rejected"]) == (1, 1)
    reason = report["results"][0]["reason"]
    assert report["results"][0]["status"] == "REJECTED"
    assert reason.startswith("data.status")
    assert "已退款" in reason
    async with app.state.db.read_sessions() as session:
        [letter] = (await session.execute(select(DeadLetter))).scalars().all()
    assert (letter.channel, letter.source_id, letter.reason) == ("MINI_PROGRAM", "r3", reason)
    assert "已退款" not in letter.payload  # sealed at rest: a payload may hold a phone anywhere
    assert "已退款" in keyring_for(app.state.settings).unseal(letter.payload, purpose=DEAD_LETTER)
    assert letter.identity_ref == f"OPENID|{mp}|o-3"


async def test_bad_phone_identity_is_rejected_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    record = app_order("r5", {"kind": "PHONE", "value": "12345"}, order_no="A-5")
    report = await ingest(client, key, "APP", [record])
    assert report["results"][0]["reason"].startswith("identity.value")


async def test_an_older_status_never_overwrites_a_newer_one(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    key = await service_key(app, "APP")
    who = app_user("U-6")
    paid = app_order("r6", who, order_no="A-6", status=1, at="2026-11-20T10:05:00+08:00")
    older = app_order("r7", who, order_no="A-6", status=0, at="2026-11-20T10:00:00+08:00")
    await ingest(client, key, "APP", [paid])
    await ingest(client, key, "APP", [older])
    order = (await gql(ORDERS, {"identity": who}, token=key))["user"]["orders"]["nodes"][0]
    assert order["status"] == "PAID"
    shipped = app_order("r8", who, order_no="A-6", status=2, at="2026-11-20T11:00:00+08:00")
    await ingest(client, key, "APP", [shipped])
    order = (await gql(ORDERS, {"identity": who}, token=key))["user"]["orders"]["nodes"][0]
    assert (order["status"], order["updatedAt"]) == ("SHIPPED", "2026-11-20T03:00:00+00:00")


async def test_in_one_batch_the_newest_update_wins(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    key = await service_key(app, "APP")
    who = app_user("U-7")
    batch = [
        app_order("r9", who, order_no="A-7", status=3, at="2026-11-21T10:00:00+08:00"),
        app_order("r10", who, order_no="A-7", status=1, at="2026-11-20T10:00:00+08:00"),
    ]
    assert (await ingest(client, key, "APP", batch))["accepted"] == 2
    order = (await gql(ORDERS, {"identity": who}, token=key))["user"]["orders"]["nodes"][0]
    assert order["status"] == "COMPLETED"


async def test_ndjson_with_a_broken_line(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await service_key(app, "APP")
    lines = [json.dumps(cart("c1", app_user("U-8"), sku="S1", quantity=1)), "{not json", ""]
    response = await client.post(
        "/ingest/APP",
        content="\n".join(lines).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
    )
    report = response.json()
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["results"][1]["reason"].startswith("record: line 2 is not JSON")


async def test_who_may_ingest(app: FastAPI, client: httpx.AsyncClient, mp: str) -> None:
    records = [mp_order("r11", openid(mp, "o-11"), order_id="MP11")]

    async def post(channel: str, key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await client.post(f"/ingest/{channel}", json=records, headers=headers)

    assert (await post("MINI_PROGRAM", None)).status_code == 401
    assert (await post("MINI_PROGRAM", await operator_key(app, "admin"))).status_code == 403
    assert (await post("MINI_PROGRAM", await service_key(app, "APP"))).json()["error"]["code"] == "FORBIDDEN"
    assert (await post("NOWHERE", await service_key(app, "APP"))).status_code == 404


async def test_limits_are_clear(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await service_key(app, "APP")
    settings = app.state.settings
    too_many = [
        cart(f"c{i}", app_user("U-9"), sku="S", quantity=1) for i in range(settings.ingest_max_records + 1)
    ]
    response = await client.post("/ingest/APP", json=too_many, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "TOO_MANY_RECORDS"
    huge = b"[" + b" " * settings.ingest_max_body_bytes + b"]"
    response = await client.post("/ingest/APP", content=huge, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    response = await client.post("/ingest/APP", content=b"[{", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    async with app.state.db.read_sessions() as session:
        assert len((await session.execute(select(DeadLetter))).scalars().all()) == 1


async def test_graphql_ingest_is_the_same_door(app: FastAPI, gql: Gql, mp: str) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    records: list[dict[str, Any]] = [
        mp_order("g1", openid(mp, "o-g"), order_id="MPG", amount="¥88.50"),
        mp_order("g2", openid(mp, "o-g"), order_id="MPG2", amount="abc"),
    ]
    report = (await gql(INGEST, {"channel": "MINI_PROGRAM", "records": records}, token=key))["ingest"]
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["results"][1]["reason"].startswith("data.amount")
    orders = (await gql(ORDERS, {"identity": openid(mp, "o-g")}, token=key))["user"]["orders"]["nodes"]
    assert [o["totalCents"] for o in orders] == [8850]
    await gql.error(INGEST, {"channel": "APP", "records": records}, token=key, code="FORBIDDEN")
    too_many = [records[0]] * (app.state.settings.ingest_max_records + 1)
    await gql.error(
        INGEST, {"channel": "MINI_PROGRAM", "records": too_many}, token=key, code="TOO_MANY_RECORDS"
    )


async def test_racing_ingests_of_one_new_identity_make_one_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    who = app_user("U-race")
    batches = [[cart(f"race{n}", who, sku=f"S{n}", quantity=1)] for n in range(6)]
    reports = await asyncio.gather(*(ingest(client, key, "APP", b) for b in batches))
    assert all(r["accepted"] == 1 for r in reports)
    async with app.state.db.read_sessions() as session:
        assert (await session.execute(select(func.count()).select_from(User))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(Identity))).scalar_one() == 1


async def test_stored_records_advance_their_users_versions_once_per_batch(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    new, known = app_user("U-new"), app_user("U-known")
    await ingest(client, key, "APP", [cart("v1", known, sku="S", quantity=1)])

    async def versions() -> dict[str, int]:
        stmt = select(Identity.value, User.data_version).join(User, User.id == Identity.user_id)
        async with app.state.db.read_sessions() as session:
            rows = (await session.execute(stmt)).all()
        return {row.value: row.data_version for row in rows}

    before = await versions()
    batch = [
        cart("v2", new, sku="S", quantity=1),
        event("v3", new, name="click"),
        app_order("v4", known, order_no="A-v"),
        cart("v5", known, sku="T", quantity=2),
    ]
    await ingest(client, key, "APP", batch)
    after = await versions()
    # Linked and given records in one transaction: one step each, however many records.
    assert after["U-new"] == 1
    assert after["U-known"] == before["U-known"] + 1
    await ingest(client, key, "APP", batch)  # replays change nothing
    assert await versions() == after


async def test_nul_characters_are_refused_per_record_not_per_batch(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    records = [
        cart("n\x001", app_user("U-n"), sku="S", quantity=1),
        cart("n2", app_user("U-\x00n"), sku="S", quantity=1),
        cart("n3", app_user("U-n"), sku="S\x00", quantity=1),
        event("n4", {"kind": "EXTERNAL", "namespace": "qq\x00", "value": "x"}, name="click"),
        event("n5", app_user("U-n"), name="click", properties={"note": "a\x00b"}),  # inside JSON: kept
    ]
    report = await ingest(client, key, "APP", records)
    assert [r["status"] for r in report["results"]] == ["REJECTED"] * 4 + ["ACCEPTED"]
    fields = [r["reason"].split(":")[0] for r in report["results"][:4]]
    assert fields == ["id", "identity.value", "data.sku", "identity.namespace"]
    assert all("NUL" in r["reason"] for r in report["results"][:4])
    lines = [json.dumps(cart("n6", app_user("U-n"), sku="T", quantity=1)), '{"id": "n7\x00"}']
    response = await client.post(
        "/ingest/APP",
        content="\n".join(lines).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
    )
    assert [r["status"] for r in response.json()["results"]] == ["ACCEPTED", "REJECTED"]
    async with app.state.db.read_sessions() as session:
        letters = (await session.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
        [kept] = (await session.execute(select(RawRecord).where(RawRecord.source_id == "n5"))).scalars()
    assert len(letters) == 5
    assert letters[0].source_id == "n\ufffd1"
    assert "n7\ufffd" in keyring_for(app.state.settings).unseal(letters[4].payload, purpose=DEAD_LETTER)
    assert kept.payload["data"]["properties"] == {"note": "a\x00b"}


async def test_text_that_is_not_unicode_is_refused_per_record(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The standard library reads a lone surrogate escape; no database can keep it."""
    key = await service_key(app, "APP")
    garbled = json.dumps(cart("g\\ud800", app_user("U-g"), sku="S", quantity=1)).replace(
        "\\\\ud800", "\\ud800"
    )
    huge = json.dumps(event("g2", app_user("U-g"), name="click", properties={"n": 10**30}))
    response = await client.post(
        "/ingest/APP", content=f"[{garbled}, {huge}]".encode(), headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["status"] for r in report["results"]] == ["REJECTED", "ACCEPTED"]
    assert report["results"][0]["id"] == "g\ud800"
    assert "surrogate" in report["results"][0]["reason"]
    async with app.state.db.read_sessions() as session:
        [letter] = (await session.execute(select(DeadLetter))).scalars().all()
        [kept] = (await session.execute(select(RawRecord))).scalars().all()
    assert letter.source_id == "g\\ud800"
    assert kept.payload["data"]["properties"] == {"n": 10**30}


async def test_values_holding_the_bulk_separator_are_stored_exactly(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Bulk writes join a column's values with U+001F when none holds it; otherwise they send a list."""
    key = await service_key(app, "APP")
    records = [
        cart("u\x1f1", app_user("U\x1fu"), sku="S\x1f", quantity=1),
        cart("u2", app_user("U-u"), sku="T", quantity=2),
    ]
    assert (await ingest(client, key, "APP", records))["accepted"] == 2
    async with app.state.db.read_sessions() as session:
        kept = set((await session.execute(select(RawRecord.source_id))).scalars())
        lines = {(c.identity_ref, c.sku) for c in (await session.execute(select(ChannelCartItem))).scalars()}
        owners = set((await session.execute(select(Identity.value))).scalars())
    assert kept == {"u2", "u\x1f1"}
    assert lines == {("APP_USER_ID||U-u", "T"), ("APP_USER_ID||U\x1fu", "S\x1f")}
    assert owners == {"U-u", "U\x1fu"}
