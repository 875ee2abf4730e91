"""Two real uvicorn processes on PostgreSQL and Redis, each running the membership follower: one
leads, and every entry is evaluated and announced once."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select

from app.db.audience_models import AudienceEvent
from app.db.engine import make_database
from tests.conftest import REDIS_URL, settings_for
from tests.factories.identity import link
from tests.helpers import Gql
from tests.sync.test_multi_instance import _backends, admin_key, database, instance, last_cursor
from tests.sync.ws import subscriptions

__all__ = ["_backends", "database"]  # the fixtures, shared with the other multi-instance tests

CHANGES = 'subscription ($after: String) { changes(after: $after, topics: ["AUDIENCE"]) { userId } }'
SAVE = 'mutation ($c: AudienceCondition!) { saveAudience(name: "app-accounts", condition: $c) { size } }'


async def entries(database_url: str, tmp_path: Path) -> dict[int, int]:
    """How many times each user was recorded entering (or leaving) any audience."""
    db = make_database(settings_for(database_url, tmp_path))
    try:
        async with db.read_sessions() as session:
            stmt = select(AudienceEvent.user_id, func.count()).group_by(AudienceEvent.user_id)
            return {r[0]: r[1] for r in (await session.execute(stmt)).all()}
    finally:
        await db.dispose()


async def test_two_instances_evaluate_each_change_once(database: str, tmp_path: Path) -> None:
    assert REDIS_URL
    key = await admin_key(database, tmp_path)
    start = await last_cursor(database, tmp_path)
    with (
        instance(database, REDIS_URL, tmp_path / "a") as a,
        instance(database, REDIS_URL, tmp_path / "b") as b,
    ):
        async with (
            subscriptions(a, key) as subs,
            httpx.AsyncClient(base_url=f"http://{a}") as on_a,
            httpx.AsyncClient(base_url=f"http://{b}") as on_b,
        ):
            await Gql(on_a)(SAVE, {"c": {"identity": {"kind": "APP_USER_ID"}}}, token=key)
            op = await subs.subscribe(CHANGES, {"after": start})
            made = []
            for i in range(8):  # changes made on both instances, each waking both followers
                gql = Gql(on_a if i % 2 else on_b)
                made.append((await link(gql, key, kind="APP_USER_ID", value=f"MI-{i}"))["user"]["id"])
            seen = [(await subs.next(op, within=30))["changes"]["userId"] for _ in made]
            # One more: once its entry is announced, any second evaluation of the others would be too.
            last = (await link(Gql(on_b), key, kind="APP_USER_ID", value="MI-last"))["user"]["id"]
            assert (await subs.next(op, within=30))["changes"]["userId"] == last
    assert sorted(seen, key=int) == sorted(made, key=int)
    assert await entries(database, tmp_path) == {int(u): 1 for u in [*made, last]}
