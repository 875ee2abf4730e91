"""Two real uvicorn processes sharing PostgreSQL and Redis: a change made on one reaches the other."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.db.engine import make_database
from app.stores import changes as outbox
from tests.conftest import (
    PG_SKIP,
    PG_URL,
    REDIS_SKIP,
    REDIS_URL,
    missing,
    pg_admin,
    pg_database_url,
    settings_for,
)
from tests.factories.identity import new_user
from tests.helpers import Gql
from tests.sync.ws import subscriptions

CHANGES = "subscription ($after: String) { changes(after: $after) { userId topic cursor } }"


@pytest.fixture(autouse=True)
def _backends() -> None:
    """PostgreSQL and Redis, both: several instances share them."""
    if not PG_URL:
        missing(PG_SKIP)
    if not REDIS_URL:
        missing(REDIS_SKIP)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def database(pg_template: str) -> AsyncIterator[str]:
    name = f"troika_mi_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield pg_database_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def instance(database_url: str, redis_url: str, var: Path) -> Iterator[str]:
    """One `uvicorn app.main:create_app` process; it polls the outbox hourly, so only Redis delivers."""
    port = free_port()
    env = dict(
        os.environ,
        TROIKA_DATABASE_URL=database_url,
        TROIKA_REDIS_URL=redis_url,
        TROIKA_CHANGES_POLL_SECONDS="3600",
        TROIKA_TOKEN_SECRET="test-token-secret-of-at-least-32-bytes",
        TROIKA_PII_KEY="test-pii-key-of-at-least-32-bytes",
        TROIKA_VAR_DIR=str(var),
    )
    cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)]
    var.mkdir(parents=True, exist_ok=True)
    log = var / "server.log"  # a file, not a pipe nobody drains: a full pipe would stall the server
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"instance did not start: {log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def admin_key(database_url: str, tmp_path: Path) -> str:
    db = make_database(settings_for(database_url, tmp_path))
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.ADMIN}))
    finally:
        await db.dispose()
    return new.raw


async def last_cursor(database_url: str, tmp_path: Path) -> str:
    db = make_database(settings_for(database_url, tmp_path))
    try:
        async with db.read_engine.connect() as conn:
            return str(await outbox.last_cursor(conn))
    finally:
        await db.dispose()


async def test_a_change_on_one_instance_reaches_a_subscriber_on_the_other(
    database: str, tmp_path: Path
) -> None:
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
            op = await subs.subscribe(CHANGES, {"after": start})
            # A change made on its own instance reaches it (replayed or live): it listens from then on.
            here = await new_user(Gql(on_a), key, phone="+8613800140700")
            assert (await subs.next(op, within=30))["changes"]["userId"] == here
            user_id = await new_user(Gql(on_b), key, phone="+8613800140701")
            event = (await subs.next(op, within=30))["changes"]
    # Instance a reads the outbox hourly unless woken: Redis carried instance b's doorbell.
    assert (event["userId"], event["topic"]) == (user_id, "IDENTITY")


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test's own, so it can be stopped and started again."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("this test starts its own redis-server, which is not installed")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def test_no_change_is_lost_while_redis_restarts(database: str, tmp_path: Path) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    key = await admin_key(database, tmp_path)
    start = await last_cursor(database, tmp_path)
    with private_redis(port) as first_redis:
        with (
            instance(database, redis_url, tmp_path / "a") as a,
            instance(database, redis_url, tmp_path / "b") as b,
        ):
            async with subscriptions(a, key) as subs, httpx.AsyncClient(base_url=f"http://{b}") as client:
                gql = Gql(client)
                op = await subs.subscribe(CHANGES, {"after": start})
                before = await new_user(gql, key, phone="+8613800140710")
                assert (await subs.next(op, within=30))["changes"]["userId"] == before
                first_redis.terminate()
                first_redis.wait(10)
                # Redis is down: both instances keep serving, and their changes wait in the outbox.
                during = [await new_user(gql, key, phone=f"+86138001407{i}1") for i in range(3)]
                with private_redis(port):
                    after = await new_user(gql, key, phone="+8613800140799")
                    seen = [(await subs.next(op, within=30))["changes"] for _ in range(4)]
                    # No duplicate followed: the next event is the next change, made now.
                    last = await new_user(gql, key, phone="+8613800140798")
                    assert (await subs.next(op, within=30))["changes"]["userId"] == last
    assert [c["userId"] for c in seen] == [*during, after]
    cursors = [int(c["cursor"]) for c in seen]
    assert cursors == list(range(cursors[0], cursors[0] + 4)), "every change, once, in order"
