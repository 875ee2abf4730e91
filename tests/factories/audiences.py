"""Audience factories: bring kept membership up to date where no follower task runs."""

from __future__ import annotations

from fastapi import FastAPI


async def followed(app: FastAPI) -> int:
    """Run the membership follower up to the outbox's end now (tests serve without a lifespan)."""
    applied: int = await app.state.live_audiences.catch_up()
    return applied
