"""What the job tests share: reading the queue and the inbox, and bringing a backoff's end forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from procrastinate.jobs import Job
from procrastinate.testing import InMemoryConnector
from sqlalchemy import func, select

from app.db.channel_models import ChannelEvent
from app.db.models import WechatInbox
from app.jobs.runner import Jobs


async def inbox(app: FastAPI) -> list[tuple[str, str | None]]:
    async with app.state.db.read_sessions() as s:
        rows = await s.execute(select(WechatInbox.status, WechatInbox.outcome).order_by(WechatInbox.id))
        return [(r.status, r.outcome) for r in rows]


async def events(app: FastAPI) -> int:
    async with app.state.db.read_sessions() as s:
        return int((await s.execute(select(func.count()).select_from(ChannelEvent))).scalar_one())


async def jobs_of(jobs: Jobs, task: str) -> list[Job]:
    manager = (await jobs.open()).job_manager
    return sorted(await manager.list_jobs_async(task=task), key=lambda j: j.id or 0)


async def make_due(jobs: Jobs) -> None:
    """Waiting out a backoff without waiting: every queued job becomes due now."""
    connector = (await jobs.open()).connector
    if isinstance(connector, InMemoryConnector):
        for row in connector.jobs.values():
            if row["status"] == "todo":
                row["scheduled_at"] = None
        return
    await connector.execute_query_async(
        "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'"
    )


async def age_workers(jobs: Jobs, seconds: float) -> None:
    """As if every worker's last heartbeat was `seconds` ago (a killed worker sends none)."""
    connector = (await jobs.open()).connector
    if isinstance(connector, InMemoryConnector):
        then = datetime.now(UTC) - timedelta(seconds=seconds)
        for worker_id in connector.workers:
            connector.workers[worker_id] = then
        return
    await connector.execute_query_async(
        f"UPDATE procrastinate_workers SET last_heartbeat = now() - interval '{int(seconds)} seconds'"
    )
