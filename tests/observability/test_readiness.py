"""/readyz names the dependency that is down; /healthz stays a liveness check."""

from __future__ import annotations

import os
import socket

import pytest

from app.settings import Settings
from tests.helpers import served


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_ready_when_every_dependency_answers(settings: Settings) -> None:
    redis = os.environ.get("TROIKA_TEST_REDIS_URL")
    async with served(settings, redis_url=redis) as (_app, client):
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert set(body["checks"]) == ({"database", "redis"} if redis else {"database"})


@pytest.mark.parametrize(
    ("dependency", "setting"),
    [
        ("database", "database_url"),
        ("store:app", "app_database_url"),
        ("redis", "redis_url"),
    ],
)
async def test_a_dependency_down_fails_readiness_by_name(
    settings: Settings, dependency: str, setting: str
) -> None:
    port = closed_port()
    url = (
        f"redis://127.0.0.1:{port}/0"
        if setting == "redis_url"
        else f"postgresql+asyncpg://troika@127.0.0.1:{port}/gone"
    )
    async with served(settings, readiness_timeout_seconds=1.0, **{setting: url}) as (_app, client):
        response = await client.get("/readyz")
        health = await client.get("/healthz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == [dependency]
    assert body["checks"][dependency] != "ok"
    assert health.status_code == 200  # alive, only not ready
