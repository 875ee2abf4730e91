"""SIGTERM: the server closes subscriptions with 1001 and exits; a client resumes by cursor."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.factories.auth import operator_key
from tests.factories.identity import new_user
from tests.helpers import Gql
from tests.observability.server import database, troika_serve
from tests.sync.ws import subscriptions

CHANGES = """
subscription ($after: String) {
  changes(after: $after) { userId topic cursor }
}
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
async def test_sigterm_closes_subscriptions_going_away_and_they_resume_by_cursor(
    sqlite_template: Path, tmp_path: Path
) -> None:
    _url, settings = database(sqlite_template, tmp_path)
    app = create_app(settings)
    admin = await operator_key(app, "admin")
    await app.state.db.dispose()

    with troika_serve(settings, env={"TROIKA_DRAIN_SECONDS": "5"}) as (address, server):
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            gql = Gql(http)
            async with subscriptions(address, admin) as subs:
                op = await subs.subscribe(CHANGES, {"after": "0"})
                first = await new_user(gql, admin, phone="+8613800160001")
                seen = (await subs.next(op, within=30))["changes"]
                assert seen["userId"] == first
                server.send_signal(signal.SIGTERM)
                await asyncio.wait_for(subs.ws.wait_closed(), 30)
                assert subs.ws.close_code == 1001, subs.ws.close_code  # going away: reconnect
        status = await asyncio.to_thread(server.wait, 60)
        log = server.stdout.read().decode() if server.stdout else ""
    assert status in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal once it has stopped
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log, log

    with troika_serve(settings) as (address, _server):
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            second = await new_user(Gql(http), admin, phone="+8613800160002")
            async with subscriptions(address, admin) as subs:
                op = await subs.subscribe(CHANGES, {"after": seen["cursor"]})
                resumed = (await subs.next(op, within=30))["changes"]
                assert resumed["userId"] == second  # nothing missed, nothing repeated
                assert int(resumed["cursor"]) > int(seen["cursor"])
