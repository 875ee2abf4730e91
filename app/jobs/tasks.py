"""Troika's jobs: a WeChat push's processing, and the periodic sweeps and clean-ups.

Every job finds what it works with (database, settings, inbox) in the worker's context, so the
same jobs run in `troika serve` and in `troika worker`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from procrastinate import App, JobContext

from app.db.types import utcnow
from app.jobs.queue import Backoff, RetryLater, backoff_for
from app.settings import Settings
from app.stores import audience_members, cleanup
from app.stores import changes as outbox

if TYPE_CHECKING:
    from app.db.engine import Database
    from app.ingest.service import Ingestor
    from app.wechat.inbox import OfficialAccountInbox

log = logging.getLogger("troika.jobs")
PROCESS_PUSH = "wechat.process_push"
SWEEP_INBOX = "wechat.sweep_inbox"
RETRY_STALLED = "jobs.retry_stalled"
CLEAN_UP = "jobs.clean_up"
PULL_OFFICIAL_ACCOUNT = "wechat.pull_official_account"
SEND_CAMPAIGN = "campaigns.send"
STALLED_SECONDS = 60.0  # a worker silent this long (heartbeat every 10 s) is dead: its jobs go back


@dataclass
class Runtime:
    """What jobs work with, handed to every job through the worker's context."""

    db: Database
    settings: Settings
    inbox: OfficialAccountInbox | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def runtime(context: JobContext) -> Runtime:
    found = context.additional_context["troika"]
    assert isinstance(found, Runtime)
    return found


def push_lock(push_id: int) -> str:
    return f"wechat-push:{push_id}"


async def process_push(context: JobContext, push_id: int) -> str:
    """One official-account push's slow work; a WeChat failure is retried with backoff, then FAILED."""
    rt = runtime(context)
    assert rt.inbox is not None
    assert context.job is not None
    last = backoff_for(rt.settings).is_last(context.job)
    return await rt.inbox.process(push_id, last_attempt=last, take_over=True)


async def sweep_inbox(context: JobContext, timestamp: int) -> int:
    """Defer a job for every push and campaign left unfinished (a crash, or an in-memory queue lost)."""
    from app.jobs.runner import defer_unfinished_campaigns, defer_unfinished_pushes

    rt = runtime(context)
    assert context.app is not None
    await defer_unfinished_campaigns(context.app, rt.db)
    return await defer_unfinished_pushes(context.app, rt.db)


async def retry_stalled(context: JobContext, timestamp: int) -> int:
    """Jobs a dead worker held (no heartbeat for a minute) go back to the queue."""
    assert context.app is not None
    return await requeue_stalled(context.app)


async def requeue_stalled(queue: App, *, silent_for: float = STALLED_SECONDS) -> int:
    """Put back the jobs of workers silent for `silent_for` seconds (killed mid-job); how many."""
    manager = queue.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=silent_for))
    for job in stalled:
        await manager.retry_job(job)
    if stalled:
        log.warning("retried %d jobs of workers that stopped mid-job", len(stalled))
    return len(stalled)


async def clean_up(context: JobContext, timestamp: int) -> dict[str, int]:
    """Delete what is past its retention: outbox, SMS codes, refresh tokens, pushes, dead letters, jobs."""
    rt = runtime(context)
    s, now = rt.settings, utcnow()
    counts = await clean_up_database(rt.db, s)
    assert context.app is not None
    await context.app.job_manager.delete_old_jobs(
        nb_hours=max(int(s.jobs_retention_days * 24), 1), include_failed=True, include_cancelled=True
    )
    if any(counts.values()):
        log.info("clean-up at %s: %s", now.isoformat(timespec="seconds"), counts)
    return counts


async def clean_up_database(db: Database, s: Settings) -> dict[str, int]:
    """Each clean-up in batches until nothing is left past its retention; the rows deleted of each."""
    now = utcnow()

    def ago(days: float) -> Any:
        return now - timedelta(days=days)

    hub_steps = {
        "outbox": lambda session: outbox.prune(session, older_than=ago(s.changes_retention_days)),
        "audience_events": lambda session: audience_members.prune_events(
            session, older_than=ago(s.changes_retention_days)
        ),
        "sms_codes": lambda session: cleanup.spent_phone_codes(
            session, before=ago(s.sms_code_retention_days)
        ),
        "refresh_tokens": lambda session: cleanup.spent_refresh_tokens(
            session, before=ago(s.refresh_token_retention_days)
        ),
        "inbox_done": lambda session: cleanup.finished_pushes(
            session, status="done", before=ago(s.inbox_retention_days)
        ),
        "inbox_failed": lambda session: cleanup.finished_pushes(
            session, status="failed", before=ago(s.dead_letter_retention_days)
        ),
    }
    counts = dict.fromkeys([*hub_steps, "dead_letters"], 0)
    for name, step in hub_steps.items():
        counts[name] = await _until_done(db.write_sessions, step)
    for store in db.stores:
        counts["dead_letters"] += await _until_done(
            store.engines.write_sessions,
            lambda session: cleanup.dead_letters(session, before=ago(s.dead_letter_retention_days)),
        )
    return counts


async def _until_done(sessions: Any, step: Any) -> int:
    total = 0
    while True:
        async with sessions() as session, session.begin():
            n = int(await step(session))
        total += n
        if n < cleanup.BATCH:
            return total


async def pull_official_account(context: JobContext, timestamp: int) -> dict[str, Any]:
    """The daily pull: every day WeChat serves after the last one stored (one job per tick)."""
    rt = runtime(context)
    return await pull_due(rt.db, rt.settings, rt.inbox.ingestor if rt.inbox is not None else None)


async def pull_due(db: Database, s: Settings, ingestor: Ingestor | None = None) -> dict[str, Any]:
    """Pull what is due; a WeChat failure keeps the days before it and is retried (RetryLater)."""
    from app.errors import DomainError
    from app.services import official_account as service
    from app.wechat.api import WeChatApi
    from app.wechat.datacube import OfficialAccountData

    if not (s.official_account_appid and s.official_account_secret):
        return {"skipped": "the official account is not configured"}
    span = await service.due(db, first_pull_days=s.official_account_pull_days)
    if span is None:
        return {"days": 0}
    api = WeChatApi(s)
    try:
        if ingestor is None:
            from app.ingest.dictionary import load_dictionary
            from app.ingest.service import Ingestor

            ingestor = Ingestor(db, load_dictionary(s.data_dictionary_path), s)
        report = await service.pull(db, OfficialAccountData(api), *span, ingestor=ingestor)
    except DomainError as exc:
        raise RetryLater(f"official-account pull of {span[0]}..{span[1]}: {exc.message}") from exc
    finally:
        api.close()
    log.info("official account: pulled %d days (%s..%s)", report.days, report.first, report.last)
    return {"from": report.first.isoformat(), "to": report.last.isoformat(), "days": report.days}


async def send_campaign(context: JobContext, campaign_id: int) -> str:
    """Send what is left of a campaign; WeChat busy is retried with backoff, resuming where it was."""
    rt = runtime(context)
    return await run_campaign(rt.db, rt.settings, campaign_id)


async def run_campaign(db: Database, s: Settings, campaign_id: int) -> str:
    """One run of a campaign's sending, in this process (the job's body)."""
    from app.errors import DomainError
    from app.ingest.dictionary import load_dictionary
    from app.services.campaigns import Campaigns
    from app.wechat.api import WeChatApi

    api = WeChatApi(s)
    try:
        return await Campaigns(db, load_dictionary(s.data_dictionary_path), s).run(campaign_id, api)
    except DomainError as exc:
        raise RetryLater(f"campaign {campaign_id}: {exc.message}") from exc
    finally:
        api.close()


def campaign_lock(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def register(queue: App, settings: Settings, *, periodic: bool = True) -> None:
    """Register every job on `queue`, with this deployment's retry policy (and schedules, if `periodic`)."""
    queue.task(name=PROCESS_PUSH, pass_context=True, retry=backoff_for(settings), queue="wechat")(
        process_push
    )
    queue.task(name=SEND_CAMPAIGN, pass_context=True, retry=backoff_for(settings), queue="wechat")(
        send_campaign
    )
    schedules = [
        ("* * * * *", "minutely", SWEEP_INBOX, sweep_inbox),
        ("* * * * *", "minutely", RETRY_STALLED, retry_stalled),
        ("17 * * * *", "hourly", CLEAN_UP, clean_up),
    ]
    pull = queue.task(
        name=PULL_OFFICIAL_ACCOUNT,
        pass_context=True,
        queueing_lock=PULL_OFFICIAL_ACCOUNT,
        retry=Backoff(attempts=4, base=600, ceiling=3600),  # WeChat busy: again in 10, 20, 40 min
    )(pull_official_account)
    if periodic:
        queue.periodic(cron=settings.official_account_pull_cron, periodic_id="daily")(pull)
    for cron, periodic_id, name, fn in schedules:
        task = queue.task(name=name, pass_context=True, queueing_lock=name)(fn)
        if periodic:
            queue.periodic(cron=cron, periodic_id=periodic_id)(task)
