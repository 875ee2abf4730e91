"""The daily pull on the job queue: one job per tick however many instances run, resumable, retried."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from procrastinate.periodic import PeriodicDeferrer

from app.jobs.queue import make_queue
from app.jobs.runner import Jobs
from app.jobs.tasks import PULL_OFFICIAL_ACCOUNT
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from tests.conftest import by_nature
from tests.factories.auth import operator_key
from tests.helpers import Gql
from tests.jobs.support import jobs_of, make_due
from tests.official_account.support import PULL, STATS, days_back


async def _stored(gql: Gql, key: str, days: list[str]) -> list[str]:
    stats = (await gql(STATS, {"from": days[0], "to": days[-1]}, token=key))["officialAccountStats"]
    return [s["date"] for s in stats]


@pytest.mark.postgres
async def test_two_instances_defer_one_daily_pull(
    settings: Settings, app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    if settings.is_sqlite:
        by_nature("with SQLite one process runs the jobs (an in-memory queue)")
    tick = datetime.now(UTC).replace(hour=0, minute=45, second=30, microsecond=0).timestamp()
    one, two = make_queue(settings), make_queue(settings)
    async with one.open_async(), two.open_async():
        ticks = [
            [
                (t, ts)
                for t, ts in PeriodicDeferrer(q.periodic_registry).get_previous_tasks(at=tick)
                if t.task.name == PULL_OFFICIAL_ACCOUNT
            ]
            for q in (one, two)
        ]
        assert [len(t) for t in ticks] == [1, 1]
        await asyncio.gather(
            *(
                PeriodicDeferrer(q.periodic_registry).defer_jobs(t)
                for q, t in zip((one, two), ticks, strict=True)
            )
        )
    jobs: Jobs = app.state.jobs
    assert len(await jobs_of(jobs, PULL_OFFICIAL_ACCOUNT)) == 1
    await jobs.drain()
    key = await operator_key(app, "viewer")
    days = days_back(7)  # a first pull reaches back TROIKA_OFFICIAL_ACCOUNT_PULL_DAYS
    assert await _stored(gql, key, days) == days
    assert fake_wechat.calls["/datacube/getusersummary"] == 1  # one pull, by one instance


async def test_the_daily_pull_resumes_after_the_last_day_and_retries_a_failed_one(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    days = days_back(5)
    await gql(PULL, {"from": days[0], "to": days[1]}, token=key)
    fake_wechat.reset()
    fake_wechat.datacube_failures[f"getarticlesummary:{days[3]}"] = 1  # WeChat busy on that day
    jobs: Jobs = app.state.jobs
    queue = await jobs.open()
    await queue.configure_task(PULL_OFFICIAL_ACCOUNT).defer_async(timestamp=0)
    await jobs.drain()
    assert await _stored(gql, key, days) == days[:3]  # the failed day and after are missing, whole
    [job] = await jobs_of(jobs, PULL_OFFICIAL_ACCOUNT)
    assert job.status == "todo"  # to be tried again (in 10 minutes)
    assert fake_wechat.calls["/datacube/getusersummary"] == 1  # from the day after the last stored
    await make_due(jobs)
    await jobs.drain()
    assert await _stored(gql, key, days) == days
