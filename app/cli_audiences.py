"""`troika audiences export`: a saved audience's recipients as CSV, for the tools a company has."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from app.cli_support import with_db
from app.db.engine import Database
from app.domain import Channel
from app.domain.entitlements import Purpose
from app.errors import DomainError
from app.ingest.dictionary import load_dictionary
from app.services.audiences import Audiences
from app.settings import get_settings
from app.stores import interest_tags

CLI_ACTOR = "cli:audiences-export"


@click.group()
def audiences() -> None:
    """Saved audiences."""


@audiences.command("export")
@click.argument("name")
@click.option("--channel", required=True, type=click.Choice([c.value for c in Channel]))
@click.option(
    "--purpose",
    default=Purpose.MARKETING.value,
    show_default=True,
    type=click.Choice([p.value for p in Purpose]),
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="A file (default: standard output)."
)
def export_cmd(name: str, channel: str, purpose: str, output: Path | None) -> None:
    """Write the audience's recipients in CHANNEL for PURPOSE as CSV: user_id, openid, unionid,
    app_user_id (the consent and follow rules of Audience.recipients)."""
    settings = get_settings()
    dictionary = load_dictionary(settings.data_dictionary_path)
    err = Console(stderr=True)

    async def work(db: Database) -> int:
        bar = Progress(
            TextColumn(f"[bold]{name} → {channel}"), BarColumn(), MofNCompleteColumn(), console=err
        )
        task = bar.add_task("export", total=None)
        out = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        written = 0
        try:
            rows = csv.writer(out)
            rows.writerow(["user_id", "openid", "unionid", "app_user_id"])
            with bar:
                async for uid, openid, unionid, account in Audiences(db, dictionary, settings).export(
                    name,
                    channel=Channel(channel),
                    purpose=Purpose(purpose),
                    actor=CLI_ACTOR,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                ):
                    rows.writerow([uid, openid or "", unionid or "", account or ""])
                    written += 1
        finally:
            if output:
                out.close()
        return written

    try:
        written = with_db(settings, work)
    except DomainError as exc:
        raise click.UsageError(exc.message) from exc
    click.echo(f"{written} recipients written", err=True)


@audiences.command("rebuild-interest-tags")
def rebuild_interest_tags_cmd() -> None:
    """Recount every channel store's kept interest tags from its events (after interest_rules change)."""
    settings = get_settings()
    dictionary = load_dictionary(settings.data_dictionary_path)

    async def work(db: Database) -> int:
        written = 0
        for store in db.stores:
            async with store.engines.write_engine.begin() as conn:
                written += await interest_tags.rebuild(conn, dictionary)
        return written

    click.echo(f"interest tags: {with_db(settings, work)} rows", err=True)
