"""`troika pii …`: PII key rotation from the command line."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.cli_support import with_db
from app.db.engine import Database
from app.sealing import keyring_for
from app.services.rekey import RekeyReport, pending, reencrypt
from app.settings import get_settings


@click.group()
def pii() -> None:
    """PII at rest: key rotation."""


@pii.command("re-encrypt")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--dry-run", is_flag=True, help="Only count what an older key sealed.")
def reencrypt_cmd(batch_size: int, dry_run: bool) -> None:
    """Seal again, with the newest key of TROIKA_PII_KEYS, every value an older key sealed
    (resumable: a run stopped anywhere is finished by the next)."""
    settings = get_settings()
    keyring = keyring_for(settings)
    err = Console(stderr=True)

    async def count(db: Database) -> dict[str, int]:
        return await pending(db, keyring)

    if dry_run:
        for name, n in with_db(settings, count).items():
            click.echo(f"{name}: {n} to re-encrypt")
        return

    async def work(db: Database) -> RekeyReport:
        total = sum((await pending(db, keyring)).values())
        bar = Progress(
            TextColumn(f"[bold]re-encrypt (key {keyring.current})"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("re-encrypt", total=total)
        with bar:
            return await reencrypt(
                db, keyring, batch_size=batch_size, progress=lambda n: bar.advance(task, n)
            )

    report = with_db(settings, work)
    for name, n in report.rewritten.items():
        click.echo(f"{name}: {n} re-encrypted")
    if report.unreadable:
        for name, n in report.unreadable.items():
            click.echo(f"{name}: {n} sealed with a key that is not configured; left as they are", err=True)
        raise click.ClickException("some values open with no configured key (see above)")
    click.echo(f"every sealed value is now under key {keyring.current}")
