"""`troika pii re-encrypt`: every value an older key sealed, sealed again with the newest key.

In batches, each its own committed transaction, so a run can stop anywhere and the next one goes
on: what is left is exactly what still starts with an older key id. A value no configured key
opens is counted and left as it is (its key was dropped from TROIKA_PII_KEYS too early).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.db.engine import Database, Engines
from app.sealing import Keyring, SealError
from app.stores import sealed as store
from app.stores.sealed import SEALED, SealedColumn


@dataclass
class RekeyReport:
    rewritten: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)


def _places(db: Database) -> list[tuple[SealedColumn, Engines, str]]:
    """Each sealed column in each database that holds it (channel stores once per database)."""
    out: list[tuple[SealedColumn, Engines, str]] = []
    for column in SEALED:
        if not column.in_channel_stores:
            out.append((column, db, column.name))
            continue
        for st in db.stores:
            where = "" if st.shares_hub else f" ({'/'.join(c.value for c in st.channels)} store)"
            out.append((column, st.engines, column.name + where))
    return out


async def pending(db: Database, keyring: Keyring) -> dict[str, int]:
    """Values per column still sealed by an older key."""
    counts = {}
    for column, engines, name in _places(db):
        async with engines.read_sessions() as session:
            counts[name] = await store.count_stale(session, column, keyring.current)
    return counts


async def reencrypt(
    db: Database, keyring: Keyring, *, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> RekeyReport:
    """Seal every stale value again with the newest key; `progress(n)` after each batch of n."""
    report = RekeyReport()
    for column, engines, name in _places(db):
        after, rewritten, unreadable = 0, 0, 0
        while True:
            async with engines.write_sessions() as session, session.begin():
                rows = await store.stale_batch(
                    session, column, keyring.current, after_id=after, limit=batch_size
                )
                if not rows:
                    break
                fresh = []
                for row_id, old in rows:
                    try:
                        fresh.append((row_id, old, keyring.reseal(old, purpose=column.purpose)))
                    except SealError:
                        unreadable += 1
                rewritten += await store.rewrite(session, column, fresh)
            after = rows[-1][0]
            if progress is not None:
                progress(len(rows))
        report.rewritten[name] = rewritten
        if unreadable:
            report.unreadable[name] = unreadable
    return report
