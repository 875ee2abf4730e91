"""`troika wechat …`: the follower backfill and the official-account inbox from the command line."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.cli_support import with_db
from app.db.engine import Database
from app.errors import DomainError
from app.ingest.dictionary import load_dictionary
from app.settings import Settings, get_settings
from app.wechat.api import WeChatApi
from app.wechat.followers import SyncReport, sync_followers
from app.wechat.inbox import OfficialAccountInbox

URL_HELP = "The running Troika server (default: TROIKA_SERVER_URL, else http://127.0.0.1:8000)."
url_option = click.option("--url", default=None, metavar="URL", help=URL_HELP)


@click.group()
def wechat() -> None:
    """WeChat: backfill followers, finish official-account pushes."""


def _reachable(url: str, what: str) -> None:
    """Fail in one line, before any work, when nothing answers at `url`."""
    import requests

    try:
        requests.get(url, timeout=5, allow_redirects=False).close()
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise click.ClickException(
            f"{what} at {url} did not answer ({reason}): is Troika serving there (make run)? "
            "Give its address with --url or TROIKA_SERVER_URL."
        ) from None


def _wechat_settings(url: str | None, *, check: bool = True) -> Settings:
    """The settings, with the development fake WeChat of the server at `url` (or the configured
    one), checked to answer when the command needs it; real WeChat stays as configured."""
    settings = get_settings()
    if not settings.wechat_fake:
        if url is not None:
            raise click.UsageError("--url names a Troika server whose fake WeChat to use (development)")
        return settings
    if url is not None:
        settings = settings.model_copy(update={"wechat_api_base_url": f"{url.rstrip('/')}/fake-wechat"})
    if check:
        _reachable(settings.wechat_api_base_url, "the fake WeChat")
    return settings


@wechat.command("sync-followers")
@click.option(
    "--restart", is_flag=True, help="Start from the first follower, not where the last run stopped."
)
@url_option
def sync_followers_cmd(restart: bool, url: str | None) -> None:
    """Link every official-account follower's openid and unionid (resumable)."""
    settings = _wechat_settings(url)
    err = Console(stderr=True)

    async def work(db: Database) -> SyncReport:
        api = WeChatApi(settings)
        bar = Progress(
            TextColumn("[bold]followers"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("followers", total=None)

        def show(report: SyncReport) -> None:
            bar.update(task, total=report.total, completed=report.done)

        try:
            with bar:
                return await sync_followers(db, api, restart=restart, progress=show)
        finally:
            api.close()

    try:
        report = with_db(settings, work)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    resumed = f" (resumed after {report.resumed_after})" if report.resumed_after else ""
    click.echo(
        f"followers: {report.done} of {report.total} done{resumed}; {report.with_unionid} unionids linked, "
        f"{report.conflicts} conflicts",
        err=True,
    )


@wechat.command("process-inbox")
@url_option
def process_inbox_cmd(url: str | None) -> None:
    """One attempt now, in this process, at every push not finished (pending, to retry, abandoned)."""
    settings = _wechat_settings(url, check=False)  # an empty inbox needs no WeChat

    async def work(db: Database) -> dict[str, int]:
        api = WeChatApi(settings)
        try:
            return await OfficialAccountInbox(
                db, settings, load_dictionary(settings.data_dictionary_path), api
            ).process_unfinished()
        finally:
            api.close()

    counts = with_db(settings, work)
    click.echo(
        "inbox: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"), err=True
    )


@wechat.command("inbox")
@click.option("--all", "everything", is_flag=True, help="Every unfinished push too, not only failed ones.")
@click.option("--retry", is_flag=True, help="Put the failed pushes (or those named) back in the queue.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.argument("push_ids", nargs=-1, type=int)
def inbox_cmd(everything: bool, retry: bool, limit: int, push_ids: tuple[int, ...]) -> None:
    """List official-account pushes that failed for good (with why), or retry them."""
    from app.cli_jobs import with_jobs
    from app.stores import wechat as store

    settings = get_settings()
    if retry:
        ids = list(push_ids) or None
        if settings.is_sqlite:
            # The queue is the server's (in memory): its inbox sweep takes them within a minute.
            async def requeue(db: Database) -> list[int]:
                async with db.write_sessions() as session, session.begin():
                    return await store.requeue_failed(session, ids)

            done = with_db(settings, requeue)
        else:
            done = with_jobs(settings, lambda jobs: jobs.retry_failed_pushes(ids))
        click.echo(f"inbox: {len(done)} pushes queued again" + (f": {done}" if done else ""), err=True)
        return
    statuses = ["failed", "retrying", "pending", "processing"] if everything else ["failed"]

    async def listing(db: Database) -> list[store.PushSummary]:
        async with db.read_sessions() as session:
            return await store.pushes(session, statuses=statuses, limit=limit)

    rows = with_db(settings, listing)
    for row in rows:
        at = (row.processed_at or row.received_at).isoformat(timespec="seconds")
        click.echo(f"{row.id:>8}  {row.status:<10}  {row.attempts:>2}  {at}  {row.outcome or ''}")
    if not rows:
        click.echo("inbox: no " + ("unfinished" if everything else "failed") + " pushes", err=True)


@wechat.command("push")
@click.option("--person", required=True, help="Who, as the fake WeChat names people (e.g. alice).")
@click.option(
    "--event",
    default="subscribe",
    show_default=True,
    type=click.Choice(["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW"]),
)
@click.option("--key", default="", help="EventKey: the menu key (CLICK), URL (VIEW) or scene (qrscene_12).")
@click.option("--safe", is_flag=True, help="Encrypt it, as WeChat's safe mode does.")
@url_option
def push_cmd(person: str, event: str, key: str, safe: bool, url: str | None) -> None:
    """Development: send a signed official-account push, as WeChat would, to try the webhook."""
    import requests

    from app.settings import Environment
    from app.wechat.fake import FakeWeChat, event_push, signed_push
    from app.wechat.webhook import PATH

    settings = get_settings()
    if settings.env is not Environment.DEVELOPMENT or not settings.official_account_appid:
        raise click.UsageError("push is a development tool")
    openid = FakeWeChat(apps={}).openid(settings.official_account_appid, person)
    xml = event_push(openid, event, EventKey=key) if key else event_push(openid, event)
    params, body = signed_push(settings, xml, safe=safe)
    server = (url or settings.server_url).rstrip("/")
    try:
        answer = requests.post(f"{server}{PATH}", params=params, data=body.encode(), timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(
            f"the Troika server at {server} did not answer ({type(exc).__name__}): is it serving "
            "(make run)? Give its address with --url or TROIKA_SERVER_URL."
        ) from None
    click.echo(f"{answer.status_code} {answer.text}")
    click.echo(f"  openid {openid} (OFFICIAL_ACCOUNT {settings.official_account_appid})", err=True)


@wechat.command("pull")
@click.option(
    "--from", "first", help="The first day, YYYY-MM-DD (Beijing time); default: after the last stored."
)
@click.option("--to", "last", help="The last day, inclusive; default: the newest WeChat serves (yesterday).")
def pull_cmd(first: str | None, last: str | None) -> None:
    """Pull the official account's figures, articles and comments; a day pulled again is replaced."""
    from datetime import date

    from app.ingest.service import Ingestor
    from app.services import official_account as service
    from app.wechat.datacube import OfficialAccountData

    settings = get_settings()
    err = Console(stderr=True)

    async def work(db: Database) -> service.PullReport | None:
        if first is None and last is None:
            span = await service.due(db, first_pull_days=settings.official_account_pull_days)
            if span is None:
                return None
            begin, end = span
        else:
            newest = service.latest_served().isoformat()
            begin, end = service.parse_range(first or last or newest, last or newest)
        service.check_served(begin, end)
        api = WeChatApi(settings)
        bar = Progress(
            TextColumn("[bold]days"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
        )
        task = bar.add_task("days", total=(end - begin).days + 1)
        try:
            with bar:
                return await service.pull(
                    db,
                    OfficialAccountData(api),
                    begin,
                    end,
                    ingestor=Ingestor(db, load_dictionary(settings.data_dictionary_path), settings),
                    progress=lambda n, _t: bar.update(task, completed=n),
                )
        finally:
            api.close()

    try:
        report = with_db(settings, work)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if report is None:
        click.echo(f"official account: up to date (through {service.latest_served()})", err=True)
        return
    assert isinstance(report.first, date)
    click.echo(
        f"official account: {report.days} days pulled ({report.first}..{report.last}), "
        f"{report.articles} articles, {report.comments} comments",
        err=True,
    )
