"""`troika worker` and `troika jobs`: run background jobs in a process of their own, list and retry them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import click

from app.db.engine import make_database
from app.ingest.dictionary import load_dictionary
from app.integrations import Integrations
from app.jobs.runner import Jobs, JobSummary
from app.jobs.tasks import Runtime
from app.settings import Settings, get_settings
from app.wechat.inbox import OfficialAccountInbox

T = TypeVar("T")
STATUSES = ["todo", "doing", "succeeded", "failed", "cancelled", "aborted"]


@asynccontextmanager
async def open_jobs(settings: Settings) -> AsyncIterator[Jobs]:
    """The queue with everything its jobs need (database, WeChat, the inbox), closed after."""
    db = make_database(settings)
    integrations = Integrations.from_settings(settings)
    inbox = OfficialAccountInbox(
        db, settings, load_dictionary(settings.data_dictionary_path), integrations.wechat
    )
    jobs = Jobs(Runtime(db, settings, inbox))
    inbox.jobs = jobs
    try:
        yield jobs
    finally:
        await jobs.close()
        await integrations.close()
        await db.dispose()


def with_jobs(settings: Settings, work: Callable[[Jobs], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_jobs(settings) as jobs:
            return await work(jobs)

    return asyncio.run(run())


def _shared_queue(settings: Settings) -> None:
    if settings.is_sqlite:
        raise click.ClickException(
            "with SQLite the job queue lives inside `troika serve` (TROIKA_JOBS_IN_PROCESS); "
            "dedicated workers and `troika jobs` need PostgreSQL (TROIKA_DATABASE_URL)"
        )


@click.command()
@click.option("--name", default="worker", show_default=True, help="Shown in the logs and the job list.")
def worker(name: str) -> None:
    """Run background jobs until stopped (Ctrl-C, SIGTERM: running jobs finish first)."""
    settings = get_settings()
    _shared_queue(settings)
    click.echo(f"worker {name}: running jobs (concurrency {settings.jobs_concurrency})", err=True)
    with_jobs(settings, lambda jobs: jobs.run_worker(name=name))


def _line(job: JobSummary) -> str:
    when = job.scheduled_at.isoformat(timespec="seconds") if job.scheduled_at else "-"
    args = json.dumps(job.args, sort_keys=True)
    return f"{job.id:>8}  {job.status:<9}  {job.attempts:>2}  {when:<25}  {job.task}  {args}"


@click.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state (e.g. failed).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
def jobs(ctx: click.Context, status: str | None, limit: int) -> None:
    """List recent jobs, newest first: id, status, attempts, next run, task, arguments."""
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    _shared_queue(settings)
    found = with_jobs(settings, lambda j: j.jobs(status=status, limit=limit))
    for job in found:
        click.echo(_line(job))
    if not found:
        click.echo("jobs: none", err=True)


@jobs.command("retry")
@click.argument("job_id", type=int)
def jobs_retry(job_id: int) -> None:
    """Run a failed job again now (a push's job puts the push back in the inbox too)."""
    settings = get_settings()
    _shared_queue(settings)
    if not with_jobs(settings, lambda j: j.retry(job_id)):
        raise click.ClickException(f"no failed job {job_id}")
    click.echo(f"job {job_id}: queued again", err=True)
