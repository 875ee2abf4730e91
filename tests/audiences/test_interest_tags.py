"""The kept interest tags behind the `interest` leaf: counted at ingestion by the interests' rules,
following merges, unmerges and erasure, and recounted from the events on demand."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.channel_models import InterestTag
from app.ingest.dictionary import load_dictionary
from app.stores import interest_tags
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_user, event, ingest, openid
from tests.factories.identity import link
from tests.helpers import Gql

PREVIEW = "query ($c: AudienceCondition!) { previewAudience(condition: $c) { size members { id } } }"
INTERESTS = "query ($id: ID!) { user(id: $id) { interests { tag } } }"
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"
ERASE = "mutation ($id: ID!) { eraseUser(userId: $id) { userId } }"


async def _members(gql: Gql, token: str, tag: str) -> set[str]:
    found = (await gql(PREVIEW, {"c": {"interest": {"tag": tag}}}, token=token))["previewAudience"]
    return {m["id"] for m in found["members"]}


async def _kept(app: FastAPI) -> dict[tuple[str, str], int]:
    """(identity ref, tag) -> events, over every store."""
    out: dict[tuple[str, str], int] = {}
    for store in app.state.db.stores:
        async with store.engines.read_sessions() as session:
            stmt = select(InterestTag.identity_ref, InterestTag.tag, func.sum(InterestTag.events)).group_by(
                InterestTag.identity_ref, InterestTag.tag
            )
            for ref, tag, n in (await session.execute(stmt)).all():
                out[(ref, tag)] = out.get((ref, tag), 0) + int(n)
    return out


async def test_kept_tags_follow_merges_unmerges_and_erasure(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    s = aud_app.state.settings
    admin = await operator_key(aud_app, "admin")
    mp = s.mini_program_appid
    half = (await link(aud_gql, admin, kind="OPENID", namespace=mp, value="o-kid"))["user"]["id"]
    other = (await link(aud_gql, admin, kind="APP_USER_ID", value="U-kid"))["user"]["id"]
    records: list[dict[str, Any]] = [
        event("k1", openid(mp, "o-kid"), name="page_view", properties={"tags": ["kids", " toys "]}),
        event("k2", openid(mp, "o-kid"), name="page_view", properties={"tags": "kids"}),
        event("k3", openid(mp, "o-kid"), name="click", properties={"target": "x"}),
    ]
    await ingest(aud_client, await service_key(aud_app, "MINI_PROGRAM"), "MINI_PROGRAM", records)
    app_records = [event("k4", app_user("U-kid"), name="page_view", properties={"tags": ["books"]})]
    await ingest(aud_client, await service_key(aud_app, "APP"), "APP", app_records)
    kept = await _kept(aud_app)
    assert kept[(f"OPENID|{mp}|o-kid", "kids")] == 2
    assert kept[(f"OPENID|{mp}|o-kid", "toys")] == 1  # trimmed, as User.interests reads it
    assert await _members(aud_gql, admin, "toys") == {half}
    assert await _members(aud_gql, admin, "books") == {other}
    shown = (await aud_gql(INTERESTS, {"id": half}, token=admin))["user"]["interests"]
    assert {i["tag"] for i in shown} == {"kids", "toys"}

    merged = await link(aud_gql, admin, kind="APP_USER_ID", value="U-kid", user_id=half)
    survivor = merged["user"]["id"]
    assert await _members(aud_gql, admin, "books") == {survivor}
    assert await _members(aud_gql, admin, "kids") == {survivor}
    await aud_gql(UNMERGE, {"id": merged["merge"]["id"]}, token=admin)
    assert await _members(aud_gql, admin, "books") == {other}
    assert await _members(aud_gql, admin, "kids") == {half}

    await aud_gql(ERASE, {"id": half}, token=admin)
    assert await _members(aud_gql, admin, "kids") == set()
    assert not [k for k in await _kept(aud_app) if k[0] == f"OPENID|{mp}|o-kid"]


async def test_rebuild_recounts_from_the_events(
    aud_app: FastAPI, aud_client: httpx.AsyncClient, aud_gql: Gql
) -> None:
    s = aud_app.state.settings
    op = await operator_key(aud_app, "operator")
    await link(aud_gql, op, kind="OPENID", namespace=s.mini_program_appid, value="o-re")
    records = [
        event(f"r{i}", openid(s.mini_program_appid, "o-re"), name="page_view", properties={"tags": ["a"]})
        for i in range(3)
    ]
    await ingest(aud_client, await service_key(aud_app, "MINI_PROGRAM"), "MINI_PROGRAM", records)
    before = await _kept(aud_app)
    for store in aud_app.state.db.stores:
        async with store.engines.write_engine.begin() as conn:
            await interest_tags.rebuild(conn, load_dictionary(None))
    assert await _kept(aud_app) == before
    assert before[(f"OPENID|{s.mini_program_appid}|o-re", "a")] == 3
