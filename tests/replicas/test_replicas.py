"""Queries read a real streaming replica: read-your-writes, lag and failure take it out of rotation."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.cli import migrate
from app.db.replicas import Replicas
from app.http.lane import STATS as LANE
from app.main import create_app
from tests.conftest import settings_for
from tests.factories.auth import operator_key, user_token
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.replicas.cluster import Cluster, missing_tools, streaming_replica

pytestmark = pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")

USER = "query User($id: ID!) { user(id: $id) { id identities { kind value } } }"
ME = "query Me { me { id identities { kind value } } }"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with streaming_replica(Path(tempfile.mkdtemp(prefix="troika-replica-"))) as running:
        yield running


@pytest.fixture
async def app(cluster: Cluster, tmp_path: Path) -> AsyncIterator[FastAPI]:
    name = f"troika_{tmp_path.name[-20:].replace('-', '_').lower()}"
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.primary_port}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    settings = settings_for(cluster.url(cluster.primary_port, name), tmp_path / "var").model_copy(
        update={
            "database_replica_urls": cluster.url(cluster.replica_port, name),
            "replica_max_lag_seconds": 1.0,
        }
    )
    await asyncio.to_thread(migrate, settings)
    application = create_app(settings)
    try:
        yield application
    finally:
        await application.state.db.dispose()
        await resume(cluster)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def gql(app: FastAPI) -> AsyncIterator[Gql]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as client:
        yield Gql(client)


async def on_replica(cluster: Cluster, sql: str) -> object:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.replica_port}/postgres")
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def pause(cluster: Cluster) -> None:
    await on_replica(cluster, "SELECT pg_wal_replay_pause()")


async def resume(cluster: Cluster) -> None:
    try:
        await on_replica(cluster, "SELECT pg_wal_replay_resume()")
    except OSError:
        pass  # the test stopped the replica


async def caught_up(app: FastAPI) -> Replicas:
    """The replicas once the one replica is in rotation (replayed what the primary holds)."""
    replicas = Replicas.of(app.state.db)
    assert replicas is not None
    for _ in range(200):
        await replicas.check(replicas.replicas[0])
        if replicas.replicas[0].in_rotation and replicas.replicas[0].lag == 0:
            return replicas
        await asyncio.sleep(0.05)
    raise AssertionError("the replica never caught up")


def reads(target: str) -> float:
    return REGISTRY.get_sample_value("troika_db_query_reads_total", {"target": target}) or 0.0


async def test_queries_read_the_replica_and_a_user_reads_their_own_writes(
    app: FastAPI, gql: Gql, cluster: Cluster
) -> None:
    writer = await operator_key(app, "admin")
    reader = await operator_key(app, "admin")
    user_id = await new_user(gql, writer, phone="+8613800170001")
    await caught_up(app)
    await pause(cluster)  # from here the replica falls behind, and stays within the lag bound a while
    await link(gql, writer, kind="APP_USER_ID", value="replica-1", user_id=user_id)
    fresh = {"kind": "APP_USER_ID", "value": "replica-1"}

    before = reads("replica")
    seen_by_reader = await gql(USER, {"id": user_id}, token=reader)
    assert fresh not in seen_by_reader["user"]["identities"], "another caller reads the (stale) replica"
    assert reads("replica") == before + 1

    seen_by_user = await gql(ME, token=user_token(app, user_id))
    assert fresh in seen_by_user["me"]["identities"], "the user's data version sent this read to the primary"

    lane = LANE["taken"]
    seen_by_writer = await gql(USER, {"id": user_id}, token=writer)
    assert fresh in seen_by_writer["user"]["identities"], "a key that just wrote reads the primary"
    assert LANE["taken"] == lane, "with replicas, every query goes through ReplicaReads (no fast lane)"


async def test_a_lagging_replica_leaves_the_rotation_and_comes_back(
    app: FastAPI, gql: Gql, cluster: Cluster
) -> None:
    writer = await operator_key(app, "admin")
    reader = await operator_key(app, "admin")
    replicas = await caught_up(app)
    await pause(cluster)
    user_id = await new_user(gql, writer, phone="+8613800170002")
    replica = replicas.replicas[0]
    for _ in range(100):  # the lag grows past its 1 s bound once the primary commits after the pause
        await asyncio.sleep(0.1)
        await new_user(gql, writer, phone=f"+86138001703{_:02d}")
        await replicas.check(replica)
        if not replica.in_rotation:
            break
    assert not replica.in_rotation, replica.lag
    before = reads("primary")
    assert (await gql(USER, {"id": user_id}, token=reader))["user"]["id"] == user_id  # the primary answers
    assert reads("primary") == before + 1
    await resume(cluster)
    assert (await caught_up(app)).replicas[0].in_rotation


async def test_a_failed_replica_is_taken_out_and_queries_still_answer(
    app: FastAPI, gql: Gql, cluster: Cluster
) -> None:
    writer = await operator_key(app, "admin")
    reader = await operator_key(app, "admin")
    user_id = await new_user(gql, writer, phone="+8613800170004")
    replicas = await caught_up(app)
    await asyncio.to_thread(cluster.stop_replica)
    await replicas.check(replicas.replicas[0])
    assert not replicas.replicas[0].in_rotation
    assert (await gql(USER, {"id": user_id}, token=reader))["user"]["id"] == user_id
