"""Racing links of one new identity end with one owner: never two users, never a 500."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.models import Identity, User
from tests.factories.auth import operator_key
from tests.factories.identity import LINK, new_user
from tests.helpers import Gql

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
