"""`troika import` and `troika deadletters`: the command-line door of ingestion."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from app.cli_support import with_db
from app.db.engine import Database
from app.domain import Channel
from app.domain.channel_data import DeadLetterRow
from app.errors import DomainError
from app.ingest.dictionary import load_dictionary
from app.ingest.parsing import record_of_line
from app.ingest.service import DEAD_LETTER, Ingestor, RecordOutcome, RecordStatus
from app.sealing import keyring_for
from app.settings import get_settings
from app.stores import channel as store

CHANNELS = click.Choice([c.value for c in Channel])


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, bytes read, the line) for each line, so progress follows the file's size."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            yield n, len(raw), raw.rstrip(b"\r\n")


@click.command("import")
@click.option("--channel", type=CHANNELS, required=True, help="The channel the records come from.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 5000))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_records(channel: str, batch_size: int, file: Path) -> None:
    """Ingest an NDJSON file of envelopes, with a progress bar and a summary; exits 1 when any
    record was rejected (each is kept as a dead letter with its reason)."""
    settings = get_settings()
    dictionary = load_dictionary(settings.data_dictionary_path)
    target = Channel(channel)
    err = Console(stderr=True)
    file_size = file.stat().st_size

    async def work(db: Database) -> tuple[Counter[RecordStatus], list[RecordOutcome]]:
        ingestor = Ingestor(db, dictionary, settings)
        totals: Counter[RecordStatus] = Counter()
        rejected: list[RecordOutcome] = []
        batch: list[object] = []
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[records]} records"),
            console=err,
        )

        async def flush() -> None:
            try:
                report = await ingestor.ingest(target, batch, actor=f"cli:import:{target.value}")
            except DomainError as exc:
                done = sum(totals.values())
                raise click.ClickException(
                    f"{exc.code}: {exc.message} (the {done} records before this batch were imported; "
                    "importing the file again answers them DUPLICATE)"
                ) from exc
            totals.update(r.status for r in report.results)
            rejected.extend(r for r in report.results if r.status is RecordStatus.REJECTED)
            batch.clear()

        with progress:
            task = progress.add_task(f"import {file.name}", total=file_size, records=0)
            count = 0
            for n, size, line in _lines(file):
                progress.advance(task, size)
                if not line.strip():
                    continue
                batch.append(record_of_line(n, line))  # unreadable: a REJECTED record, kept
                count += 1
                if len(batch) >= batch_size:
                    await flush()
                    progress.update(task, records=count)
            if batch:
                await flush()
            progress.update(task, records=count)
        return totals, rejected

    totals, rejected = with_db(settings, work)
    table = Table(title=f"{file.name} → {target.value}")
    for status in RecordStatus:
        table.add_column(status.value.lower(), justify="right")
    table.add_row(*(str(totals[s]) for s in RecordStatus))
    out = Console()
    out.print(table)
    for r in rejected[:20]:
        out.print(f"  rejected {r.id or '(no id)'}: {r.reason}")
    if len(rejected) > 20:
        out.print(f"  … and {len(rejected) - 20} more: `troika deadletters --channel {target.value}`")
    if rejected:
        sys.exit(1)  # a script or a CI step must notice; the accepted records are in all the same


@click.command()
@click.option("--channel", type=CHANNELS, help="Only this channel.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, payload included.")
def deadletters(channel: str | None, limit: int, as_json: bool) -> None:
    """List rejected records, newest first, with the reason each was refused."""
    settings = get_settings()

    async def work(db: Database) -> list[DeadLetterRow]:
        rows: list[DeadLetterRow] = []
        for st in db.stores:
            async with st.engines.read_sessions() as session:
                rows += await store.dead_letters(
                    session, channel=Channel(channel) if channel else None, limit=limit
                )
        return sorted(rows, key=lambda r: r.received_at, reverse=True)[:limit]

    rows = with_db(settings, work)
    if as_json:
        keyring = keyring_for(settings)
        for r in rows:
            click.echo(
                json.dumps(
                    {
                        "channel": r.channel.value,
                        "id": r.source_id,
                        "reason": r.reason,
                        "receivedAt": r.received_at.isoformat(),
                        # Sealed at rest (it may hold a phone anywhere); shown to whoever runs this.
                        "payload": keyring.try_unseal(r.payload, purpose=DEAD_LETTER)
                        or "(sealed with a key that is not configured)",
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title=f"dead letters ({len(rows)})")
    for name in ("received (UTC)", "channel", "id", "reason"):
        table.add_column(name)
    for r in rows:
        table.add_row(
            r.received_at.strftime("%Y-%m-%d %H:%M:%S"), r.channel.value, r.source_id or "", r.reason
        )
    Console().print(table)
