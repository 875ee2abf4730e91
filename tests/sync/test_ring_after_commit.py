"""The doorbell rings after the transaction's own commit, not when a savepoint inside it is
released (SQLAlchemy calls the commit hooks for both): a feed woken earlier would read nothing."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import insert

from app.db.models import User
from app.db.types import utcnow
from app.services.changes import ON_COMMITTED, Topic, record_changes


async def test_a_change_recorded_in_a_savepoint_rings_at_the_commit(app: FastAPI) -> None:
    db = app.state.db
    rung: list[int] = []
    db.write_sessions.configure(info={**db.write_sessions.kw["info"], ON_COMMITTED: [rung.append]})
    async with db.write_sessions() as session, session.begin():
        user_id = (
            await session.execute(insert(User).values(created_at=utcnow()).returning(User.id))
        ).scalar_one()
        async with session.begin_nested():
            await record_changes(session, [(user_id, Topic.IDENTITY)])
        assert rung == [], "rung before the commit: the row is not readable yet"
    assert len(rung) == 1
    assert [c.user_id for c in await app.state.feed.read(rung[0] - 1)] == [user_id]
