"""Reservations as channel data: each channel's native shape, order-safe updates, the unified list."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_reservation, app_user, event, ingest, mp_reservation, openid
from tests.factories.identity import link
from tests.helpers import Gql

RESERVATIONS = """
query ($identity: IdentityInput!, $status: ReservationStatus, $first: Int, $after: String) {
  user(identity: $identity) {
    reservations(status: $status, first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { channel sourceId service status startsAt bookedAt updatedAt }
    }
    interests { tag weight }
  }
}
"""


async def _person(app: FastAPI, gql: Gql) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """One person: mini program and official account openids and an APP account on one user."""
    settings = app.state.settings
    token = await operator_key(app, "operator")
    mp_id = openid(settings.mini_program_appid, "o-book")
    oa_id = openid(settings.official_account_appid, "o-book-oa")
    first = await link(
        gql, token, kind="OPENID", namespace=mp_id["namespace"], value="o-book", unionid="u-book"
    )
    await link(gql, token, kind="OPENID", namespace=oa_id["namespace"], value="o-book-oa", unionid="u-book")
    await link(gql, token, kind="APP_USER_ID", value="U-book", user_id=first["user"]["id"])
    return mp_id, oa_id, app_user("U-book")


async def test_reservations_of_every_channel_newest_first(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, oa_id, app_id = await _person(app, gql)
    await ingest(
        client,
        await service_key(app, "MINI_PROGRAM"),
        "MINI_PROGRAM",
        [mp_reservation("r1", mp_id, reservation_id="R1", at="2026-11-20T10:00:00+08:00")],
    )
    await ingest(
        client,
        await service_key(app, "OFFICIAL_ACCOUNT"),
        "OFFICIAL_ACCOUNT",
        [
            mp_reservation(
                "r2",
                oa_id,
                reservation_id="R2",
                service="亲子游泳",
                status="已确认",
                starts_at=None,
                at="2026-11-21T10:00:00+08:00",
            )
        ],
    )
    await ingest(
        client,
        await service_key(app, "APP"),
        "APP",
        [app_reservation("r3", app_id, reservation_no="A-R3", status=4, at="2026-11-22T10:00:00+08:00")],
    )
    mp_key = await service_key(app, "MINI_PROGRAM")
    found = (await gql(RESERVATIONS, {"identity": mp_id}, token=mp_key))["user"]
    nodes = found["reservations"]["nodes"]
    assert [(n["channel"], n["sourceId"], n["service"], n["status"]) for n in nodes] == [
        ("APP", "A-R3", "少儿编程体验课", "NO_SHOW"),
        ("OFFICIAL_ACCOUNT", "R2", "亲子游泳", "CONFIRMED"),
        ("MINI_PROGRAM", "R1", "儿童摄影", "BOOKED"),
    ]
    assert nodes[2]["startsAt"] == "2026-12-01T07:00:00+00:00"
    assert nodes[1]["startsAt"] is None
    assert found["reservations"]["totalCount"] == 3
    # A reservation's service feeds the interests, as the reservation event's does.
    assert {i["tag"] for i in found["interests"]} == {"儿童摄影", "亲子游泳", "少儿编程体验课"}
    paged = (await gql(RESERVATIONS, {"identity": mp_id, "first": 2}, token=mp_key))["user"]["reservations"]
    rest = (
        await gql(
            RESERVATIONS,
            {"identity": mp_id, "first": 2, "after": paged["pageInfo"]["endCursor"]},
            token=mp_key,
        )
    )["user"]["reservations"]
    assert [n["sourceId"] for n in paged["nodes"] + rest["nodes"]] == ["A-R3", "R2", "R1"]
    assert rest["totalCount"] == 3
    assert not rest["pageInfo"]["hasNextPage"]
    booked = (await gql(RESERVATIONS, {"identity": mp_id, "status": "BOOKED"}, token=mp_key))["user"]
    assert [n["sourceId"] for n in booked["reservations"]["nodes"]] == ["R1"]


async def test_an_older_update_never_overwrites_a_newer_one(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, _oa_id, _app_id = await _person(app, gql)
    key = await service_key(app, "MINI_PROGRAM")
    attended = mp_reservation(
        "u2", mp_id, reservation_id="R9", status="已到店", at="2026-11-20T12:00:00+08:00"
    )
    booked = mp_reservation("u1", mp_id, reservation_id="R9", status="已预约", at="2026-11-20T09:00:00+08:00")
    first = await ingest(client, key, "MINI_PROGRAM", [attended])
    assert first["accepted"] == 1
    await ingest(client, key, "MINI_PROGRAM", [booked])
    again = await ingest(client, key, "MINI_PROGRAM", [attended])  # a replay changes nothing
    assert again["duplicates"] == 1
    nodes = (await gql(RESERVATIONS, {"identity": mp_id}, token=key))["user"]["reservations"]["nodes"]
    assert [(n["sourceId"], n["status"]) for n in nodes] == [("R9", "ATTENDED")]
    # Booked when its earliest record says, updated when its newest did.
    assert nodes[0]["bookedAt"] == "2026-11-20T01:00:00+00:00"
    assert nodes[0]["updatedAt"] == "2026-11-20T04:00:00+00:00"


async def test_unknown_reservation_status_is_rejected_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    settings = app.state.settings
    bad = mp_reservation(
        "x1", openid(settings.mini_program_appid, "o-x"), reservation_id="RX", status="预约中"
    )
    wrong = app_reservation("x2", app_user("U-x"), reservation_no="AX", status=7)
    mp = await ingest(client, await service_key(app, "MINI_PROGRAM"), "MINI_PROGRAM", [bad])
    assert mp["rejected"] == 1
    assert mp["results"][0]["reason"].startswith("data.status: unknown status")
    other = await ingest(client, await service_key(app, "APP"), "APP", [wrong])
    assert other["results"][0]["reason"].startswith("data.status: unknown status 7")


async def test_tags_feed_interests_for_every_event_type(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    mp_id, _oa_id, _app_id = await _person(app, gql)
    key = await service_key(app, "MINI_PROGRAM")
    await ingest(
        client,
        key,
        "MINI_PROGRAM",
        [
            event("t1", mp_id, name="reservation", properties={"service": "儿童摄影", "tags": ["母婴"]}),
            event("t2", mp_id, name="live_watch", properties={"tags": "育儿直播"}),
        ],
    )
    interests = (await gql(RESERVATIONS, {"identity": mp_id}, token=key))["user"]["interests"]
    assert {i["tag"] for i in interests} == {"儿童摄影", "母婴", "育儿直播"}
