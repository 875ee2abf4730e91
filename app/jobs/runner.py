"""Running jobs: the in-process worker of `troika serve`, `troika worker`, and what operators ask of jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Job, Status

from app.background import spawn
from app.db.engine import Database
from app.db.types import utcnow
from app.jobs.queue import make_queue, quiet_expected_failures
from app.jobs.tasks import PROCESS_PUSH, SEND_CAMPAIGN, Runtime, campaign_lock, push_lock
from app.stores import wechat as inbox_store
from app.wechat.inbox import LEASE

log = logging.getLogger("troika.jobs")


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as operators see it."""

    id: int
    task: str
    status: str
    attempts: int
    args: dict[str, Any]
    scheduled_at: datetime | None
    queue: str


def summary(job: Job) -> JobSummary:
    assert job.id is not None
    return JobSummary(
        id=job.id,
        task=job.task_name,
        status=str(job.status),
        attempts=job.attempts,
        args=dict(job.task_kwargs),
        scheduled_at=job.scheduled_at,
        queue=job.queue,
    )


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A job that failed for good, with why when Troika knows it (a push's last error)."""

    job: JobSummary
    reason: str | None


async def defer_push(queue: App, push_id: int) -> None:
    """Queue a push's processing once: a second request while one waits is a no-op."""
    lock = push_lock(push_id)
    with contextlib.suppress(AlreadyEnqueued):
        await queue.configure_task(PROCESS_PUSH, lock=lock, queueing_lock=lock).defer_async(push_id=push_id)


async def defer_campaign(queue: App, campaign_id: int) -> None:
    """Queue a campaign's sending once: one job per campaign at a time, none waiting twice."""
    lock = campaign_lock(campaign_id)
    with contextlib.suppress(AlreadyEnqueued):
        await queue.configure_task(SEND_CAMPAIGN, lock=lock, queueing_lock=lock).defer_async(
            campaign_id=campaign_id
        )


async def defer_unfinished_campaigns(queue: App, db: Database) -> int:
    """Queue every campaign a crash or a restart left unfinished (it resumes where it stopped)."""
    from app.services.campaigns import unfinished

    async with db.read_sessions() as session:
        ids = await unfinished(session)
    if not ids:
        return 0
    # A campaign whose job waits or runs (or is stalled: retry_stalled puts that one back) has one.
    held = {
        int(str(job.task_kwargs["campaign_id"]))
        for status in (Status.TODO, Status.DOING)
        for job in await queue.job_manager.list_jobs_async(task=SEND_CAMPAIGN, status=status.value)
    }
    for campaign_id in ids:
        if campaign_id not in held:
            await defer_campaign(queue, campaign_id)
    return len(ids)


async def defer_unfinished_pushes(queue: App, db: Database) -> int:
    """Queue every push not finished (pending, to retry, abandoned); how many were looked at."""
    async with db.read_sessions() as session:
        ids = await inbox_store.unfinished(session, stale_before=utcnow() - LEASE, limit=10_000)
    pending = {
        int(str(job.task_kwargs["push_id"]))
        for job in await queue.job_manager.list_jobs_async(task=PROCESS_PUSH, status=Status.TODO.value)
    }
    for push_id in ids:
        if push_id not in pending:
            await defer_push(queue, push_id)
    return len(ids)


class Jobs:
    """One process's handle on the queue: defer, run a worker (in the background or until idle), list."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.queue = make_queue(runtime.settings)
        # The same queue without the schedules: runs what is due now, defers no periodic job.
        self._drainer = make_queue(runtime.settings, self.queue.connector, periodic=False)
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        quiet_expected_failures()

    async def open(self) -> App:
        async with self._open_lock:
            if not self._opened:
                await self.queue.open_async()
                self._opened = True
        return self.queue

    def _worker_options(self, **more: Any) -> dict[str, Any]:
        return {
            "concurrency": self.runtime.settings.jobs_concurrency,
            "additional_context": {"troika": self.runtime},
            "install_signal_handlers": False,
            "fetch_job_polling_interval": 2.0,
            "shutdown_graceful_timeout": 10.0,
            **more,
        }

    async def start(self) -> None:
        """Serve: run a worker in this process (unless turned off), after queueing what a restart left."""
        await self.open()
        await defer_unfinished_pushes(self.queue, self.runtime.db)
        await defer_unfinished_campaigns(self.queue, self.runtime.db)
        if self.runtime.settings.jobs_in_process and self._worker is None:
            self._worker = spawn(
                self.queue.run_worker_async(**self._worker_options(name="in-process")), name="jobs-worker"
            )

    async def run_worker(self, *, name: str = "worker") -> None:
        """`troika worker`: run jobs until stopped (SIGINT, SIGTERM: the running jobs finish first)."""
        await self.open()
        await defer_unfinished_pushes(self.queue, self.runtime.db)
        await defer_unfinished_campaigns(self.queue, self.runtime.db)
        await self.queue.run_worker_async(**self._worker_options(name=name, install_signal_handlers=True))

    async def drain(self) -> None:
        """Run every job due now, and those they queue, then return (tests, one-off commands)."""
        await self.open()
        for _ in range(20):
            await self._drainer.run_worker_async(**self._worker_options(name="drain", wait=False))
            due = [j for j in await self.todo() if j.scheduled_at is None or j.scheduled_at <= utcnow()]
            if not due:
                return

    async def defer_push(self, push_id: int) -> None:
        await defer_push(await self.open(), push_id)

    async def defer_campaign(self, campaign_id: int) -> None:
        await defer_campaign(await self.open(), campaign_id)

    async def todo(self) -> list[Job]:
        manager = (await self.open()).job_manager
        return list(await manager.list_jobs_async(status=Status.TODO.value))

    async def jobs(self, *, status: str | None = None, limit: int = 50) -> list[JobSummary]:
        """Jobs, newest first, of a status (todo, doing, succeeded, failed, cancelled, aborted) or any."""
        manager = (await self.open()).job_manager
        found = [summary(j) for j in await manager.list_jobs_async(status=status)]
        return sorted(found, key=lambda j: j.id, reverse=True)[:limit]

    async def failed(self, *, limit: int) -> list[FailedJob]:
        """Failed jobs, newest first; a push's with the reason kept on the push."""
        found = await self.jobs(status=Status.FAILED.value, limit=limit)
        push_ids = [int(str(j.args["push_id"])) for j in found if j.task == PROCESS_PUSH]
        async with self.runtime.db.read_sessions() as session:
            pushes = await inbox_store.pushes_by_ids(session, push_ids)
        reasons = {p.id: p.outcome for p in pushes}
        return [
            FailedJob(j, reasons.get(int(str(j.args["push_id"]))) if j.task == PROCESS_PUSH else None)
            for j in found
        ]

    async def retry(self, job_id: int) -> bool:
        """Run a failed job again now (a push's job puts its push back to pending); False: no such job."""
        manager = (await self.open()).job_manager
        found = list(await manager.list_jobs_async(id=job_id, status=Status.FAILED.value))
        if not found:
            return False
        if found[0].task_name == PROCESS_PUSH:
            async with self.runtime.db.write_sessions() as session, session.begin():
                await inbox_store.requeue_failed(session, [int(str(found[0].task_kwargs["push_id"]))])
        await manager.retry_job_by_id_async(job_id, retry_at=utcnow())
        return True

    async def retry_failed_pushes(self, ids: list[int] | None) -> list[int]:
        """Failed pushes (these, or all) back to pending, each job run again or queued anew."""
        async with self.runtime.db.write_sessions() as session, session.begin():
            requeued = await inbox_store.requeue_failed(session, ids)
        manager = (await self.open()).job_manager
        failed = {
            int(str(job.task_kwargs["push_id"])): job.id
            for job in await manager.list_jobs_async(task=PROCESS_PUSH, status=Status.FAILED.value)
        }
        for push_id in requeued:
            job_id = failed.get(push_id)
            if job_id is not None:
                await manager.retry_job_by_id_async(job_id, retry_at=utcnow())
            else:
                await defer_push(self.queue, push_id)
        return requeued

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._opened:
            await self.queue.close_async()
            self._opened = False
