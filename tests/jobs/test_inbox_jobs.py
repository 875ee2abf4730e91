"""The official-account inbox on the job queue: backoff, FAILED, retry, a dead worker's job, the sweep."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from app.db.types import utcnow
from app.jobs.queue import Backoff
from app.jobs.runner import Jobs, defer_unfinished_pushes
from app.jobs.tasks import PROCESS_PUSH, requeue_stalled
from app.stores import wechat as store
from app.wechat.fake import FakeWeChat
from app.wechat.messages import open_push
from tests.factories.auth import operator_key
from tests.factories.wechat import event_xml
from tests.factories.wechat_push import push, signed
from tests.helpers import Gql
from tests.jobs.support import age_workers, events, inbox, jobs_of, make_due

FAILED_JOBS = """
query { failedJobs { id task attempts arguments reason } }
"""
RETRIES = {"wechat_inbox_attempts": 3, "jobs_retry_base_seconds": 30, "jobs_retry_max_seconds": 45}


def test_the_backoff_doubles_up_to_its_ceiling() -> None:
    backoff = Backoff(attempts=8, base=30, ceiling=3600)
    assert [backoff.delay(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]


@pytest.mark.parametrize("settings", [RETRIES], indirect=True)
async def test_a_failing_push_is_retried_with_backoff_then_failed_and_retried_by_hand(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    jobs: Jobs = app.state.jobs
    [openid] = fake_wechat.follow("tess")
    fake_wechat.user_info_failures = 100  # WeChat's user/info answers "system busy" until further notice
    await push(client, app.state.settings, event_xml(openid, "subscribe"))
    waits = []
    for _attempt in range(2):
        await jobs.drain()
        [(status, outcome)] = await inbox(app)
        assert status == "retrying"
        assert "busy" in (outcome or "")
        [job] = await jobs_of(jobs, PROCESS_PUSH)
        assert job.status == "todo"
        assert job.scheduled_at is not None
        waits.append((job.scheduled_at - utcnow()).total_seconds())
        await make_due(jobs)
    # Backoff: about 30 s after the first failure, then 60 s capped at the 45 s ceiling.
    assert 20 < waits[0] <= 30
    assert 35 < waits[1] <= 45
    await jobs.drain()  # the third and last attempt
    [(status, outcome)] = await inbox(app)
    assert status == "failed"
    assert "busy" in (outcome or "")
    [job] = await jobs_of(jobs, PROCESS_PUSH)
    assert (job.status, job.attempts) == ("failed", 3)
    assert [j.id for j in await jobs.jobs(status="failed")] == [job.id]
    failed = (await gql(FAILED_JOBS, token=await operator_key(app, "admin")))["failedJobs"]
    assert failed == [
        {
            "id": str(job.id),
            "task": PROCESS_PUSH,
            "attempts": 3,
            "arguments": job.task_kwargs,
            "reason": "WeChat is busy (-1); try again",
        }
    ]
    await gql.error(FAILED_JOBS, token=await operator_key(app, "operator"), code="FORBIDDEN")

    fake_wechat.user_info_failures = 0  # WeChat is back: an operator retries the failed pushes
    assert await jobs.retry_failed_pushes(None) != []
    await jobs.drain()
    # The behaviour landed at the first attempt (before user/info failed), and only then.
    assert await inbox(app) == [("done", "subscribe: duplicate; unionid linked")]
    assert await events(app) == 1
    [job] = await jobs_of(jobs, PROCESS_PUSH)
    assert job.status == "succeeded"
    # WeChat being busy is reported in one line each time, never with a traceback.
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text] == []


async def test_a_job_whose_worker_died_mid_way_is_finished_once(
    app: FastAPI, client: httpx.AsyncClient, fake_wechat: FakeWeChat
) -> None:
    jobs: Jobs = app.state.jobs
    [openid] = fake_wechat.follow("uma")
    await push(client, app.state.settings, event_xml(openid, "subscribe"))
    manager = (await jobs.open()).job_manager
    # A worker takes the job and claims the push, then dies: no heartbeat, no finish.
    dead = await manager.register_worker()
    job = await manager.fetch_job(queues=None, worker_id=dead)
    assert job is not None
    assert job.task_name == PROCESS_PUSH
    async with app.state.db.write_sessions() as session, session.begin():
        assert await store.claim(
            session, int(str(job.task_kwargs["push_id"])), at=utcnow(), stale_before=utcnow()
        )
    await jobs.drain()
    assert [s for s, _ in await inbox(app)] == ["processing"]  # nobody else touches a job held by a worker
    await age_workers(jobs, 120)
    assert await requeue_stalled(jobs.queue) == 1
    await jobs.drain()
    assert await inbox(app) == [("done", "subscribe: accepted; unionid linked")]
    assert await events(app) == 1
    assert [j.status for j in await jobs_of(jobs, PROCESS_PUSH)] == ["succeeded"]
    await jobs.drain()  # and nothing runs it again
    assert await events(app) == 1


async def test_a_push_without_a_job_is_queued_by_the_sweep(app: FastAPI, fake_wechat: FakeWeChat) -> None:
    """What a crash between storing and queueing (or a restart of the in-memory queue) leaves."""
    jobs: Jobs = app.state.jobs
    [openid] = fake_wechat.follow("vic")
    s = app.state.settings
    params = signed(s.official_account_token)
    received = open_push(
        event_xml(openid, "subscribe").encode(), params, token=s.official_account_token, aes_key=None,
        appid=s.official_account_appid,
    )  # fmt: skip
    assert await app.state.wechat_inbox.receive(
        received, timestamp=params["timestamp"], nonce=params["nonce"]
    )
    await jobs.drain()
    assert [s for s, _ in await inbox(app)] == ["pending"]  # stored, but no job
    assert await defer_unfinished_pushes(jobs.queue, app.state.db) == 1  # at start, and every minute
    await jobs.drain()
    assert await inbox(app) == [("done", "subscribe: accepted; unionid linked")]
    assert len(await jobs_of(jobs, PROCESS_PUSH)) == 1
