"""Generate a large identity graph quickly, so the read path can be measured at a realistic size."""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli import migrate
from app.db.engine import make_engine
from app.db.models import ConsentEntry, Identity, Merge, MergeIdentity, User
from app.domain import Channel
from app.ingest.dictionary import load_dictionary
from app.pii import sealed_value, stored_value
from app.sealing import keyring_for
from app.settings import Environment, Settings
from app.stores import interest_tags
from bench import channel_data as ch

BATCH = 5_000
# A fixed clock keeps a seed's dataset identical between runs.
EPOCH_END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
PROVENANCE = {"rule": "bench", "source": "bench generator", "actor": "bench"}


@dataclass(frozen=True)
class ChannelVolume:
    """Mean channel-store rows per active user (0 skips that table)."""

    orders: int = 10
    cart_items: int = 2
    events: int = 50
    # Follows, SKU-naming views and favourites, APP logins (off by default: older datasets stay as they were).
    portrait: bool = False


@dataclass
class Dataset:
    """Rows to insert, as dicts for SQLAlchemy core executemany."""

    users: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    merge_identities: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)


# Phones are encrypted and indexed at rest: every run on a dataset must use the keys that wrote it.
# Bench data is made up, so the keys are fixed and public.
BENCH_PII_KEY = "bench-pii-key-not-a-secret-0001"
BENCH_PII_INDEX_KEY = "bench-pii-index-key-not-a-secret"


def bench_settings(database_url: str) -> Settings:
    """Settings for a bench database: a throwaway token secret, the bench's fixed PII keys."""
    return Settings(
        env=Environment.DEVELOPMENT,
        database_url=database_url,
        token_secret=secrets.token_urlsafe(32),
        pii_key=BENCH_PII_KEY,
        pii_index_key=BENCH_PII_INDEX_KEY,
        var_dir=Path(tempfile.gettempdir()) / "troika-bench",
        rate_limit_enabled=False,  # load from one address and key is the point of a benchmark
    )


def _hex(rng: random.Random, digits: int) -> str:
    """Random hex that makes generated WeChat ids look opaque."""
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def build(users: int, share: float, seed: int, settings: Settings) -> Dataset:
    """Build every row in memory; user ids are explicit so merges can point at older users."""
    rng = random.Random(seed)
    mp_appid = settings.mini_program_appid or ""
    oa_appid = settings.official_account_appid or ""
    step = SPAN / users
    start = EPOCH_END - SPAN
    absorbed = set(rng.sample(range(2, users + 1), round(share * (users - 1)))) if users > 1 else set()
    phones = iter(rng.sample(range(10**8), users))
    data = Dataset()
    active: list[int] = []
    # Identities of an active user that a later merge may say the absorbed user brought.
    movable: dict[int, list[int]] = {}
    identity_id = 0

    keyring = keyring_for(settings)

    def add(user_id: int, kind: str, namespace: str, value: str, verified: bool, at: datetime) -> int:
        nonlocal identity_id
        identity_id += 1
        data.identities.append(
            {
                "id": identity_id,
                "user_id": user_id,
                "kind": kind,
                "namespace": namespace,
                "value": stored_value(keyring, kind, value),  # a phone's blind index (app/pii.py)
                "sealed": sealed_value(keyring, kind, value),
                "verified": verified,
                "linked_at": at,
                **PROVENANCE,
            }
        )
        return identity_id

    for uid in range(1, users + 1):
        created = start + step * (uid - 1) + step * rng.random()
        if uid in absorbed:
            survivor = rng.choice(active)
            merged_at = created + timedelta(seconds=rng.randint(60, 30 * 86400))
            data.users.append({"id": uid, "created_at": created, "merged_into_id": survivor})
            merge_id = len(data.merges) + 1
            data.merges.append(
                {
                    "id": merge_id,
                    "survivor_id": survivor,
                    "absorbed_id": uid,
                    "at": min(merged_at, EPOCH_END),
                    "actor": "bench",
                    "reason": "bench: a shared identity linked the two users",
                }
            )
            brought = movable.get(survivor, [])
            if brought:
                data.merge_identities.append({"merge_id": merge_id, "identity_id": brought.pop()})
            continue
        active.append(uid)
        data.users.append({"id": uid, "created_at": created, "merged_into_id": None})

        def later(created: datetime = created) -> datetime:
            return min(created + timedelta(seconds=rng.randint(0, 90 * 86400)), EPOCH_END)

        add(uid, "OPENID", mp_appid, f"o{_hex(rng, 6)}{uid:08d}{_hex(rng, 13)}", True, created)
        add(uid, "UNIONID", "", f"oU{_hex(rng, 5)}{uid:08d}{_hex(rng, 13)}", True, created)
        extra: list[int] = []
        if rng.random() < 0.6:
            phone = f"+86138{next(phones):08d}"
            extra.append(add(uid, "PHONE", "", phone, rng.random() < 0.8, later()))
        if rng.random() < 0.5:
            extra.append(add(uid, "APP_USER_ID", "", f"app-{uid:08d}-{_hex(rng, 6)}", True, later()))
        if rng.random() < 0.4:
            value = f"oA{_hex(rng, 5)}{uid:08d}{_hex(rng, 13)}"
            extra.append(add(uid, "OPENID", oa_appid, value, True, later()))
        if extra:
            movable[uid] = extra
        # Three consents, as a privacy prompt leaves them: push in the mini program, and two of
        # the purposes that hold in every channel.
        for purpose, channel in (("PUSH", "MINI_PROGRAM"), ("PERSONALIZATION", ""), ("LOCAL_STORAGE", "")):
            data.consents.append(
                {
                    "user_id": uid,
                    "purpose": purpose,
                    "channel": channel,
                    "granted": rng.random() < 0.7,
                    "source_channel": "MINI_PROGRAM",
                    "policy_version": "2026-01",
                    "effective_at": later(),
                    "actor": "bench",
                    "cause": "set",
                    "merge_id": None,
                }
            )
    return data


async def _insert(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` in batches with core executemany (no ORM, no per-row round trip)."""
    for i in range(0, len(rows), BATCH):
        await conn.execute(insert(table), rows[i : i + BATCH])


async def write_channels(
    conn: AsyncConnection, settings: Settings, data: Dataset, volume: ChannelVolume, seed: int
) -> dict[str, int]:
    """Stream the channel-store rows into their tables; returns the rows written per table."""
    users = ch.refs_by_user(
        data.identities, settings.mini_program_appid or "", settings.official_account_appid or ""
    )
    plan: list[tuple[str, tuple[str, ...], Iterator[tuple[Any, ...]]]] = [
        ("ch_orders", ch.ORDER_COLUMNS, ch.orders(users, volume.orders, seed, EPOCH_END)),
        ("ch_cart_items", ch.CART_COLUMNS, ch.cart_items(users, volume.cart_items, seed, EPOCH_END)),
        ("ch_events", ch.EVENT_COLUMNS, ch.events(users, volume.events, seed, EPOCH_END)),
    ]
    if volume.portrait:
        rows = ch.portrait_events(users, seed, EPOCH_END)
        plan.append(("ch_events", ch.EVENT_COLUMNS, rows))
    written: dict[str, int] = {}
    for table, columns, rows in plan:
        t0 = time.perf_counter()
        written[table] = written.get(table, 0) + await ch.copy_rows(conn, table, columns, rows)
        print(f"  {table}: {written[table]} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    t0 = time.perf_counter()  # ingestion keeps these beside the events; the generator bypasses it
    written["ch_interest_tags"] = await interest_tags.rebuild(conn, load_dictionary(None))
    print(f"  ch_interest_tags: {written['ch_interest_tags']} rows in {time.perf_counter() - t0:.1f}s")
    return written


async def write(settings: Settings, data: Dataset, volume: ChannelVolume, seed: int) -> dict[str, int]:
    """Write the dataset in one transaction into an empty, migrated database."""
    if any(settings.channel_database_url(c) != settings.database_url for c in Channel):
        raise SystemExit("refusing: the generator writes channel stores only into the hub's database")
    engine = make_engine(settings.database_url, settings=settings, writer=True)
    try:
        async with engine.begin() as conn:
            existing = (await conn.execute(select(func.count()).select_from(User))).scalar_one()
            if existing:
                raise SystemExit(f"refusing: the database already has {existing} users; use a fresh one")
            await _insert(conn, User.__table__, data.users)
            await _insert(conn, Identity.__table__, data.identities)
            await _insert(conn, Merge.__table__, data.merges)
            await _insert(conn, MergeIdentity.__table__, data.merge_identities)
            await _insert(conn, ConsentEntry.__table__, data.consents)
            if conn.dialect.name == "postgresql":
                # Explicit ids leave the serial sequences behind; later inserts must not collide.
                for table in ("users", "identities", "merges"):
                    seq = f"pg_get_serial_sequence('{table}', 'id')"
                    await conn.execute(text(f"SELECT setval({seq}, (SELECT max(id) FROM {table}))"))
            written = await write_channels(conn, settings, data, volume, seed)
        # Fresh planner statistics and visibility maps, as autovacuum gives a live database: without
        # the maps, index-only scans (the audience leaves') still read the table.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return written


def main() -> None:
    """Parse the command line, migrate, build and write; print what was written and how long it took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--users", type=int, required=True, help="user rows, absorbed ones included")
    parser.add_argument("--share", type=float, default=0.3, help="fraction of users merged into another")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders-per-user", type=int, default=10, help="mean channel orders per active user")
    parser.add_argument("--cart-per-user", type=int, default=2, help="mean cart lines per active user")
    parser.add_argument(
        "--events-per-user", type=int, default=50, help="mean behaviour events per active user"
    )
    parser.add_argument(
        "--portrait",
        action="store_true",
        help="add follows, SKU-naming product views and favourites, and APP logins (bench/portrait.py)",
    )
    args = parser.parse_args()
    if args.users < 1 or not 0 <= args.share < 1:
        parser.error("--users must be >= 1 and --share in [0, 1)")
    volume = ChannelVolume(args.orders_per_user, args.cart_per_user, args.events_per_user, args.portrait)
    if not (0 <= volume.orders <= 1000 and 0 <= volume.cart_items <= 50 and 0 <= volume.events <= 10_000):
        parser.error("--orders-per-user 0..1000, --cart-per-user 0..50, --events-per-user 0..10000")
    settings = bench_settings(args.database_url)
    t0 = time.perf_counter()
    migrate(settings)  # alembic runs its own event loop, so this stays outside asyncio.run
    t1 = time.perf_counter()
    data = build(args.users, args.share, args.seed, settings)
    t2 = time.perf_counter()
    written = asyncio.run(write(settings, data, volume, args.seed))
    t3 = time.perf_counter()
    kinds: dict[str, int] = {}
    for row in data.identities:
        name = row["kind"] if row["kind"] != "OPENID" else f"OPENID[{row['namespace']}]"
        kinds[name] = kinds.get(name, 0) + 1
    active = len(data.users) - len(data.merges)
    total = len(data.users) + len(data.identities) + len(data.merges) + len(data.merge_identities)
    total += len(data.consents)
    print(f"users: {len(data.users)} ({active} active, {len(data.merges)} absorbed)")
    print(f"identities: {len(data.identities)} ({len(data.identities) / active:.2f} per active user)")
    for name, count in sorted(kinds.items()):
        print(f"  {name}: {count} ({count / active:.0%} of active users)")
    print(f"merges: {len(data.merges)}, merge_identities: {len(data.merge_identities)}")
    print(f"consent entries: {len(data.consents)}")
    for table, count in written.items():
        print(f"{table}: {count} ({count / active:.1f} per active user)")
    print(f"rows written: {total + sum(written.values())}")
    print(f"time: migrate {t1 - t0:.1f}s, build {t2 - t1:.1f}s, write {t3 - t2:.1f}s, total {t3 - t0:.1f}s")


if __name__ == "__main__":
    main()
