"""Periodic jobs: once per schedule however many instances run, and each clean-up past its retention."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from fastapi import FastAPI
from procrastinate.periodic import PeriodicDeferrer
from sqlalchemy import func, insert, select

from app.db.audience_models import AudienceEvent
from app.db.channel_models import DeadLetter
from app.db.models import Change, PhoneCode, RefreshToken, User, WechatInbox
from app.db.types import utcnow
from app.jobs.queue import make_queue
from app.jobs.tasks import CLEAN_UP, PULL_OFFICIAL_ACCOUNT, RETRY_STALLED, SWEEP_INBOX, clean_up_database
from app.settings import Settings
from tests.conftest import by_nature


@pytest.mark.postgres
async def test_a_schedule_runs_once_with_two_instances(settings: Settings) -> None:
    if settings.is_sqlite:
        by_nature("with SQLite one process runs the jobs (an in-memory queue)")
    one, two = make_queue(settings), make_queue(settings)
    async with one.open_async(), two.open_async():
        now = time.time()
        ticks = [list(PeriodicDeferrer(q.periodic_registry).get_previous_tasks(at=now)) for q in (one, two)]
        names = sorted(task.task.name for task, _ in ticks[0])
        daily = {CLEAN_UP, PULL_OFFICIAL_ACCOUNT}
        assert {SWEEP_INBOX, RETRY_STALLED} <= set(names) <= {SWEEP_INBOX, RETRY_STALLED, *daily}
        # Each instance's deferrer defers the same ticks at the same moment, as two workers would.
        await asyncio.gather(
            *(
                PeriodicDeferrer(q.periodic_registry).defer_jobs(t)
                for q, t in zip((one, two), ticks, strict=True)
            )
        )
        jobs = await one.job_manager.list_jobs_async()
        assert sorted(j.task_name for j in jobs) == names  # one job per schedule, not one per instance


async def test_each_clean_up_deletes_only_what_is_past_its_retention(app: FastAPI) -> None:
    db, s = app.state.db, app.state.settings
    now = utcnow()
    old, fresh = now - timedelta(days=400), now - timedelta(minutes=1)
    async with db.write_sessions() as session, session.begin():
        user_id = (await session.execute(insert(User).values(created_at=now).returning(User.id))).scalar_one()
        code = {"phone_hash": "p", "code_hash": "c", "requested_by": "t", "created_at": old}
        await session.execute(
            insert(PhoneCode),
            [
                {**code, "expires_at": old},  # expired long ago
                {**code, "expires_at": now + timedelta(days=1), "used_at": old},  # used long ago
                {**code, "expires_at": now + timedelta(minutes=5)},  # still usable
            ],
        )
        token = {"family": "f", "user_id": user_id, "created_at": old}
        await session.execute(
            insert(RefreshToken),
            [
                {**token, "token_hash": "a", "expires_at": old},
                {**token, "token_hash": "b", "expires_at": now + timedelta(days=30), "used_at": old},
                {**token, "token_hash": "c", "expires_at": now + timedelta(days=30), "revoked_at": old},
                {**token, "token_hash": "d", "expires_at": now + timedelta(days=30)},  # in use
            ],
        )
        push = {"appid": "a", "timestamp": "1", "payload": "<xml/>", "received_at": old, "attempts": 1}
        await session.execute(
            insert(WechatInbox),
            [
                {**push, "dedupe_key": "1", "nonce": "1", "status": "done", "processed_at": old},
                {**push, "dedupe_key": "2", "nonce": "2", "status": "failed", "processed_at": old},
                {**push, "dedupe_key": "3", "nonce": "3", "status": "done", "processed_at": fresh},
                {**push, "dedupe_key": "4", "nonce": "4", "status": "retrying", "processed_at": old},
            ],
        )
        await session.execute(
            insert(Change), [{"id": i, "user_id": user_id, "topic": "USER", "at": old} for i in (1, 2, 3)]
        )
        moved = {"audience_id": 1, "user_id": user_id, "entered": True}
        await session.execute(insert(AudienceEvent), [{**moved, "at": old}, {**moved, "at": fresh}])
    async with db.stores[0].engines.write_sessions() as session, session.begin():
        letter = {"channel": "APP", "payload": "{}", "reason": "bad"}
        await session.execute(
            insert(DeadLetter), [{**letter, "received_at": old}, {**letter, "received_at": fresh}]
        )

    counts = await clean_up_database(db, s)
    assert counts == {
        "outbox": 2,  # the newest row is kept: it numbers the next
        "audience_events": 1,
        "sms_codes": 2,
        "refresh_tokens": 3,
        "inbox_done": 1,
        "inbox_failed": 1,
        "dead_letters": 1,
    }
    async with db.read_sessions() as session:
        statuses = (await session.execute(select(WechatInbox.status).order_by(WechatInbox.id))).scalars()
        assert list(statuses) == ["done", "retrying"]
        assert (await session.execute(select(RefreshToken.token_hash))).scalars().all() == ["d"]
    assert await clean_up_database(db, s) == dict.fromkeys(counts, 0)  # nothing more to do
    async with db.stores[0].engines.read_sessions() as session:
        assert (await session.execute(select(func.count()).select_from(DeadLetter))).scalar_one() == 1
