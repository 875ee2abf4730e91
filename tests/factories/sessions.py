"""Sessions for tests, issued by the same service the sign-ins use."""

from __future__ import annotations

from fastapi import FastAPI

from app.services.sessions import IssuedSession, issue


async def signed_in(app: FastAPI, user_id: int | str) -> IssuedSession:
    async with app.state.db.write_sessions() as session, session.begin():
        return await issue(session, int(user_id), app.state.settings)
