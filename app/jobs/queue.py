"""The job queue: procrastinate on the hub's PostgreSQL, or in this process when the hub is SQLite.

procrastinate keeps jobs in PostgreSQL (durable, shared by every instance, one periodic job per
schedule however many workers run). With SQLite (`make run`, one process) it keeps them in memory:
what a restart loses is found again from the tables it works on (the inbox sweep), so no push is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from procrastinate import App, BaseConnector, PsycopgConnector, RetryDecision
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy
from procrastinate.testing import InMemoryConnector
from sqlalchemy.engine import make_url

from app.settings import Settings


class RetryLater(Exception):
    """A job's expected, reported failure (WeChat busy): retried or failed, logged without a traceback."""


@dataclass(frozen=True)
class Backoff(BaseRetryStrategy):
    """Exponential backoff with a ceiling: base, 2×base, 4×base … at most `ceiling` seconds."""

    attempts: int
    base: int
    ceiling: int

    def delay(self, failed_attempts: int) -> int:
        """Seconds to wait after the `failed_attempts`-th failure (1 for the first)."""
        return int(min(self.base * 2 ** max(failed_attempts - 1, 0), self.ceiling))

    def is_last(self, job: Job) -> bool:
        """Whether the attempt now running is the last one (procrastinate counts those before it)."""
        return job.attempts + 1 >= self.attempts

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if self.is_last(job):
            return None
        return RetryDecision(retry_in={"seconds": self.delay(job.attempts + 1)})


def backoff_for(settings: Settings) -> Backoff:
    return Backoff(
        attempts=settings.wechat_inbox_attempts,
        base=settings.jobs_retry_base_seconds,
        ceiling=settings.jobs_retry_max_seconds,
    )


def connector_for(settings: Settings) -> BaseConnector:
    """PostgreSQL's queue (psycopg, a small pool of its own) or the in-process one for SQLite."""
    if settings.is_sqlite:
        return InMemoryConnector()
    url = make_url(settings.database_url).set(drivername="postgresql")
    return PsycopgConnector(conninfo=url.render_as_string(hide_password=False), min_size=1, max_size=4)


def make_queue(settings: Settings, connector: BaseConnector | None = None, *, periodic: bool = True) -> App:
    """A procrastinate App with every Troika job (app/jobs/tasks.py); `periodic`: with their schedules."""
    from app.jobs.tasks import register

    queue = App(connector=connector or connector_for(settings))
    register(queue, settings, periodic=periodic)
    return queue


class _ExpectedFailures(logging.Filter):
    """A job failing as jobs may (RetryLater) is one log line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RetryLater):
            record.msg = f"{record.msg} ({exc})"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_failures() -> None:
    worker_log = logging.getLogger("procrastinate.worker")
    if not any(isinstance(f, _ExpectedFailures) for f in worker_log.filters):
        worker_log.addFilter(_ExpectedFailures())


def utc_in(seconds: float) -> datetime:
    from app.db.types import utcnow

    return utcnow() + timedelta(seconds=seconds)
