"""Racing links of one new identity end with one owner: never two users, never a 500."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from app.db.models import Identity, User
from app.domain import IdentityKind
from app.services.identity_rules import make_key
from app.settings import Settings
from app.stores import identity as store
from tests.conftest import by_nature
from tests.factories.auth import operator_key
from tests.factories.identity import LINK, new_user
from tests.helpers import Gql
from tests.ingest.test_concurrency import until_a_writer_waits

RACERS = 8


async def test_racing_links_of_one_new_identity_make_one_user(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    variables = {"identity": {"kind": "PHONE", "value": "+8613800138100"}}
    results = await asyncio.gather(*(gql(LINK, variables, token=token) for _ in range(RACERS)))
    owners = {r["linkIdentity"]["user"]["id"] for r in results}
    assert len(owners) == 1
    async with app.state.db.read_sessions() as session:
        assert (await session.execute(select(func.count()).select_from(User))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(Identity))).scalar_one() == 1


async def test_racing_links_to_two_users_merge_once(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    first = await new_user(gql, token, phone="+8613800138101")
    second = await new_user(gql, token, phone="+8613800138102")
    # Both users race to claim the same new APP account: one gets it, the other merges in or conflicts.
    calls = [
        gql.post(LINK, {"userId": uid, "identity": {"kind": "APP_USER_ID", "value": "A-101"}}, token)
        for uid in (first, second) * 3
    ]
    bodies = await asyncio.gather(*calls)
    codes = {e["extensions"]["code"] for b in bodies for e in b.get("errors") or []}
    assert codes <= {"IDENTITY_CONFLICT"}, bodies
    async with app.state.db.read_sessions() as session:
        holders = (
            (await session.execute(select(Identity.user_id).where(Identity.value == "A-101"))).scalars().all()
        )
    assert len(holders) == 1


@pytest.mark.parametrize(
    ("settings", "retried"),
    [({"write_attempts": 3}, True), ({"write_attempts": 1}, False)],
    indirect=["settings"],
)
async def test_a_deadlocked_mutation_is_run_again_whole_or_refused_clearly(
    app: FastAPI, gql: Gql, settings: Settings, retried: bool
) -> None:
    if settings.is_sqlite:
        by_nature("deadlocks are PostgreSQL's: SQLite write transactions queue (BEGIN IMMEDIATE)")
    token = await operator_key(app, "operator")
    user_id = await new_user(gql, token, phone="+8613800138190")
    qq = make_key(IdentityKind.EXTERNAL, "dl-1", "qq", phone_region="CN")
    variables = {"userId": user_id, "identity": {"kind": "EXTERNAL", "namespace": "qq", "value": "dl-1"}}
    async with app.state.db.write_sessions() as other, other.begin():
        # A writer taking the user first, then the identity (the link takes them the other way
        # round), and slow to check for deadlocks, so PostgreSQL aborts the link's transaction.
        await other.execute(text("SET LOCAL deadlock_timeout = '30s'"))
        await store.lock_users(other, [int(user_id)])
        linking = asyncio.create_task(gql.post(LINK, variables, token))
        await until_a_writer_waits(app)  # the link holds the identity's lock and waits for the user
        await store.lock_identity_keys(other, [qq])
    body = await linking
    if retried:
        assert not body.get("errors"), body
        assert body["data"]["linkIdentity"]["user"]["id"] == user_id
        return
    assert body.get("errors"), body
    assert body["errors"][0]["extensions"]["code"] == "WRITE_CONTENTION"
    assert "nothing was changed" in body["errors"][0]["message"]
    async with app.state.db.read_sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Identity))).scalar_one() == 1
