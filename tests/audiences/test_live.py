"""Kept membership: filled when saved, moved by the changes that move people (an order paid, a
consent withdrawn, a merge and its undoing), with an entry or exit recorded for each move."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.services.audiences import Audiences
from tests.factories.audiences import followed
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.entitlements import set_consent
from tests.factories.identity import link
from tests.helpers import Gql

SAVE = """
mutation ($name: String!, $c: AudienceCondition!) { saveAudience(name: $name, condition: $c) { name size } }
"""
AUDIENCE = "query ($name: String!) { audience(name: $name) { size members { nodes { id } } } }"
USER_AUDIENCES = "query ($id: ID!) { user(id: $id) { audiences } }"
DELETE = "mutation ($name: String!) { deleteAudience(name: $name) }"
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"
PAID_AND_CONSENTING = {
    "all": [{"orders": {"channel": "APP", "statuses": ["PAID"]}}, {"consent": {"purpose": "MARKETING"}}]
}
APP_BUYERS = {"orders": {"channel": "APP"}}


async def members(gql: Gql, token: str, name: str) -> set[str]:
    found = (await gql(AUDIENCE, {"name": name}, token=token))["audience"]
    ids = {n["id"] for n in found["members"]["nodes"]}
    assert found["size"] == len(ids)
    return ids


async def moves(app: FastAPI, name: str, after: int = 0) -> list[tuple[int, bool]]:
    """The recorded entries (True) and exits (False) of a saved audience, oldest first."""
    service = Audiences(app.state.db, app.state.dictionary, app.state.settings)
    async with app.state.db.read_sessions() as session:
        found = await service.get(session, name)
    assert found is not None
    return [(e.user_id, e.entered) for e in await service.events_after(found.id, after)]


async def buyer(app: FastAPI, client: httpx.AsyncClient, gql: Gql, op: str, account: str, order: str) -> str:
    """A user of the APP with a paid order; their id."""
    user_id: str = (await link(gql, op, kind="APP_USER_ID", value=account))["user"]["id"]
    await ingest(
        client, await service_key(app, "APP"), "APP", [app_order(order, app_user(account), order_no=order)]
    )
    return user_id


async def test_saving_fills_membership_and_changes_move_people(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    op = await operator_key(aud_app, "operator")
    first = await buyer(aud_app, aud_client, aud_gql, op, "U-live-1", "L1")
    await set_consent(aud_gql, user_token(aud_app, first), "MARKETING", granted=True, source="APP")
    saved = (await aud_gql(SAVE, {"name": "paid", "c": PAID_AND_CONSENTING}, token=op))["saveAudience"]
    assert saved["size"] == 1
    assert await members(aud_gql, op, "paid") == {first}
    assert (await aud_gql(USER_AUDIENCES, {"id": first}, token=op))["user"]["audiences"] == ["paid"]
    assert await moves(aud_app, "paid") == []  # a new audience is filled, nobody "entered"

    # An order paid: the second person enters.
    second: str = (await link(aud_gql, op, kind="APP_USER_ID", value="U-live-2"))["user"]["id"]
    await set_consent(aud_gql, user_token(aud_app, second), "MARKETING", granted=True, source="APP")
    await followed(aud_app)
    assert await members(aud_gql, op, "paid") == {first}
    await ingest(
        aud_client,
        await service_key(aud_app, "APP"),
        "APP",
        [app_order("L2", app_user("U-live-2"), order_no="L2")],
    )
    assert await followed(aud_app) >= 1
    assert await members(aud_gql, op, "paid") == {first, second}
    # A consent withdrawn: the first leaves.
    await set_consent(aud_gql, op, "MARKETING", granted=False, source="APP", channel="APP", user_id=first)
    await followed(aud_app)
    assert await members(aud_gql, op, "paid") == {second}
    assert (await aud_gql(USER_AUDIENCES, {"id": first}, token=op))["user"]["audiences"] == []
    assert await moves(aud_app, "paid") == [(int(second), True), (int(first), False)]
    # Its own announcements read, nothing is left, and nothing is applied twice.
    await followed(aud_app)
    assert await followed(aud_app) == 0
    assert await moves(aud_app, "paid") == [(int(second), True), (int(first), False)]


async def test_a_merge_moves_membership_to_the_survivor_and_an_unmerge_back(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    op = await operator_key(aud_app, "operator")
    owner = await buyer(aud_app, aud_client, aud_gql, op, "U-merge", "M1")
    other: str = (await link(aud_gql, op, kind="PHONE", value="+8613800147001"))["user"]["id"]
    await aud_gql(SAVE, {"name": "app-buyers", "c": APP_BUYERS}, token=op)
    assert await members(aud_gql, op, "app-buyers") == {owner}

    merged = await link(aud_gql, op, kind="APP_USER_ID", value="U-merge", user_id=other)
    merge = merged["merge"]
    assert merge is not None
    await followed(aud_app)
    survivor, absorbed = merge["survivorId"], merge["absorbedId"]
    assert await members(aud_gql, op, "app-buyers") == {survivor}
    if survivor != owner:  # the absorbed owner left, the survivor entered
        assert await moves(aud_app, "app-buyers") == sorted([(int(survivor), True), (int(absorbed), False)])

    await aud_gql(UNMERGE, {"id": merge["id"]}, token=op)
    await followed(aud_app)
    assert await members(aud_gql, op, "app-buyers") == {owner}
    assert (await aud_gql(USER_AUDIENCES, {"id": owner}, token=op))["user"]["audiences"] == ["app-buyers"]
    assert (await aud_gql(USER_AUDIENCES, {"id": other}, token=op))["user"]["audiences"] == []


async def test_saving_again_moves_people_and_deleting_forgets(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    op = await operator_key(aud_app, "operator")
    first = await buyer(aud_app, aud_client, aud_gql, op, "U-resave", "R1")
    await aud_gql(SAVE, {"name": "moving", "c": {"orders": {"channel": "MINI_PROGRAM"}}}, token=op)
    assert await members(aud_gql, op, "moving") == set()
    saved = (await aud_gql(SAVE, {"name": "moving", "c": APP_BUYERS}, token=op))["saveAudience"]
    assert saved["size"] == 1
    assert await moves(aud_app, "moving") == [(int(first), True)]  # a condition replaced: recorded
    await aud_gql(DELETE, {"name": "moving"}, token=op)
    assert (await aud_gql(USER_AUDIENCES, {"id": first}, token=op))["user"]["audiences"] == []


async def test_the_refresh_evaluates_whole_audiences_again(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    """What moves with the clock alone ("within N days") is caught by the periodic refresh; here a
    member kept by mistake stands in for one whose order has aged out."""
    op = await operator_key(aud_app, "operator")
    bought = await buyer(aud_app, aud_client, aud_gql, op, "U-refresh", "F1")
    other: str = (await link(aud_gql, op, kind="PHONE", value="+8613800147002"))["user"]["id"]
    await aud_gql(SAVE, {"name": "refreshed", "c": APP_BUYERS}, token=op)
    service = Audiences(aud_app.state.db, aud_app.state.dictionary, aud_app.state.settings)
    async with aud_app.state.db.write_sessions() as session, session.begin():
        found = await service.get(session, "refreshed")
        assert found is not None
        await service.move(session, found.id, {int(other)}, set(), events=False)
    assert await members(aud_gql, op, "refreshed") == {bought, other}
    assert await aud_app.state.live_audiences.refresh() == 1
    assert await members(aud_gql, op, "refreshed") == {bought}
    assert await moves(aud_app, "refreshed") == [(int(other), False)]
