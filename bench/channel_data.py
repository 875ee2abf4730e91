"""Channel-store rows for the generator: orders, cart items and behaviour events per active user.

Rows are produced lazily, one user at a time, as tuples in the tables' column order, with JSON
columns already encoded as text. PostgreSQL receives them by COPY (asyncpg's binary
`copy_records_to_table` on the transaction's own connection); SQLite by executemany in batches.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

ORDER_COLUMNS = (
    "channel",
    "order_id",
    "identity_ref",
    "status_code",
    "total_cents",
    "currency",
    "items",
    "placed_at",
    "updated_at",
    "paid_at",
)
CART_COLUMNS = ("channel", "identity_ref", "sku", "quantity", "updated_at")
EVENT_COLUMNS = ("channel", "identity_ref", "type", "occurred_at", "properties")
TAGS = (
    "coffee",
    "tea",
    "hotel",
    "spa",
    "travel",
    "kids",
    "fitness",
    "books",
    "wine",
    "beauty",
    "tech",
    "food",
)
SERVICES = ("massage", "dinner", "room", "haircut", "yoga", "tour")
PRODUCTS = tuple((f"SKU-{n:04d}", f"product {n}", 500 + 137 * n % 30_000) for n in range(400))
EVENT_SPAN = timedelta(days=90)
ORDER_SPAN = timedelta(days=365)
SQLITE_BATCH = 5_000
JSON_POOL = 256


@dataclass(frozen=True)
class UserRefs:
    """The identity refs of one active user that channels send records under."""

    mini_program: str
    app: str | None
    official_account: str | None


def _ref(kind: str, namespace: str, value: str) -> str:
    """`app.pii.ref`: "KIND|namespace|stored value", namespace '' for kinds without one (the rows'
    `value` is already what is stored: a phone's blind index)."""
    return f"{kind}|{namespace}|{value}"


def refs_by_user(identities: Iterable[dict[str, Any]], mp_appid: str, oa_appid: str) -> list[UserRefs]:
    """Per active user: the mini-program openid, an APP identity (APP_USER_ID, else the phone),
    and the official-account openid when there is one."""
    by_user: dict[int, dict[str, str]] = {}
    for row in identities:
        refs = by_user.setdefault(row["user_id"], {})
        ref = _ref(row["kind"], row["namespace"], row["value"])
        if row["kind"] == "OPENID":
            refs["mp" if row["namespace"] == mp_appid else "oa" if row["namespace"] == oa_appid else "?"] = (
                ref
            )
        else:
            refs[row["kind"]] = ref
    return [
        UserRefs(r["mp"], r.get("APP_USER_ID") or r.get("PHONE"), r.get("oa"))
        for _, r in sorted(by_user.items())
        if "mp" in r
    ]


def _spread(rng: random.Random, mean: int) -> int:
    """A count around `mean` (uniform in [mean/2, 3*mean/2]), so users differ."""
    return rng.randint(mean - mean // 2, mean + mean // 2) if mean > 0 else 0


def _json_pool(rng: random.Random) -> dict[str, list[str]]:
    """Pre-encoded event properties: encoding millions of small dicts would dominate the build."""
    return {
        "article_read": [
            json.dumps({"tags": rng.sample(TAGS, rng.randint(1, 3)), "article": f"a{n}"})
            for n in range(JSON_POOL)
        ],
        "page_view": [
            json.dumps({"path": f"/p/{n}", "tags": rng.sample(TAGS, rng.randint(0, 2))})
            for n in range(JSON_POOL)
        ],
        "reservation": [json.dumps({"service": s, "party": n % 6 + 1}) for n, s in enumerate(SERVICES * 8)],
        "click": [json.dumps({"target": f"button-{n}"}) for n in range(JSON_POOL)],
    }


def orders(users: list[UserRefs], per_user: int, seed: int, end: datetime) -> Iterator[tuple[Any, ...]]:
    """About `per_user` orders each, half in the APP when the user has an APP identity."""
    rng = random.Random(seed * 7919 + 1)
    seconds = int(ORDER_SPAN.total_seconds())
    for n, user in enumerate(users):
        for k in range(_spread(rng, per_user)):
            in_app = user.app is not None and rng.random() < 0.5
            channel, ref = ("APP", user.app) if in_app else ("MINI_PROGRAM", user.mini_program)
            items = []
            total = 0
            for sku, name, price in rng.sample(PRODUCTS, rng.randint(1, 3)):
                quantity = rng.randint(1, 4)
                total += quantity * price
                items.append({"sku": sku, "name": name, "quantity": quantity, "unit_price_cents": price})
            placed = end - timedelta(seconds=rng.randrange(seconds))
            updated = min(placed + timedelta(seconds=rng.randrange(3 * 86400)), end)
            order_id = f"{'APP' if in_app else 'MP'}-{n:07d}-{k:03d}"
            status = rng.randint(0, 4)
            # Paid (PAID, SHIPPED, COMPLETED) a quarter of the way from placed to the latest update.
            paid = placed + (updated - placed) / 4 if status in (1, 2, 3) else None
            yield (
                channel,
                order_id,
                ref,
                status,
                total,
                "CNY",
                json.dumps(items),
                placed,
                updated,
                paid,
            )


def cart_items(users: list[UserRefs], per_user: int, seed: int, end: datetime) -> Iterator[tuple[Any, ...]]:
    """About `per_user` cart lines each (distinct SKUs), in the mini program or the APP."""
    rng = random.Random(seed * 7919 + 2)
    for user in users:
        for sku, _name, _price in rng.sample(PRODUCTS, _spread(rng, per_user)):
            in_app = user.app is not None and rng.random() < 0.5
            channel, ref = ("APP", user.app) if in_app else ("MINI_PROGRAM", user.mini_program)
            yield (channel, ref, sku, rng.randint(1, 3), end - timedelta(seconds=rng.randrange(30 * 86400)))


def events(users: list[UserRefs], per_user: int, seed: int, end: datetime) -> Iterator[tuple[Any, ...]]:
    """About `per_user` events each over the last 90 days, in every channel the user has."""
    rng = random.Random(seed * 7919 + 3)
    pool = _json_pool(rng)
    types = ("article_read", "page_view", "page_view", "reservation", "click", "click")
    seconds = int(EVENT_SPAN.total_seconds())
    for user in users:
        targets = [("MINI_PROGRAM", user.mini_program)]
        if user.app:
            targets.append(("APP", user.app))
        if user.official_account:
            targets.append(("OFFICIAL_ACCOUNT", user.official_account))
        for _ in range(_spread(rng, per_user)):
            channel, ref = targets[rng.randrange(len(targets))]
            kind = (
                "article_read" if channel == "OFFICIAL_ACCOUNT" and rng.random() < 0.6 else rng.choice(types)
            )
            props = pool[kind][rng.randrange(len(pool[kind]))]
            yield (channel, ref, kind, end - timedelta(seconds=rng.randrange(seconds)), props)


def portrait_events(users: list[UserRefs], seed: int, end: datetime) -> Iterator[tuple[Any, ...]]:
    """What the portrait and the funnel read, over the last 90 days: an official-account follow
    for most followers, product views and favourites naming a SKU as each channel names it
    (`goodsId` in the mini program, `product_id` in the APP), and APP sign-ins."""
    rng = random.Random(seed * 7919 + 4)
    seconds = int(EVENT_SPAN.total_seconds())

    def at() -> datetime:
        return end - timedelta(seconds=rng.randrange(seconds))

    for user in users:
        if user.official_account and rng.random() < 0.7:
            yield ("OFFICIAL_ACCOUNT", user.official_account, "subscribe", at(), "{}")
        for _ in range(rng.randint(2, 6)):
            sku = PRODUCTS[rng.randrange(len(PRODUCTS))][0]
            kind = "favorite" if rng.random() < 0.2 else "product_view"
            yield ("MINI_PROGRAM", user.mini_program, kind, at(), json.dumps({"goodsId": sku}))
        if user.app:
            for _ in range(rng.randint(1, 4)):
                sku = PRODUCTS[rng.randrange(len(PRODUCTS))][0]
                yield ("APP", user.app, "product_view", at(), json.dumps({"product_id": sku}))
            for _ in range(rng.randint(1, 5)):
                yield ("APP", user.app, "login", at(), "{}")


def _sqlite_value(value: Any) -> Any:
    """SQLAlchemy's SQLite storage for UTCDateTime: naive UTC text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def copy_rows(
    conn: AsyncConnection, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
) -> int:
    """Write `rows` into `table` inside `conn`'s transaction; returns how many were written."""
    count = 0
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        await raw.copy_records_to_table(table, records=counted(), columns=list(columns))
        return count
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    while batch := [tuple(_sqlite_value(v) for v in row) for row in islice(rows, SQLITE_BATCH)]:
        await conn.exec_driver_sql(sql, batch)
        count += len(batch)
    return count
