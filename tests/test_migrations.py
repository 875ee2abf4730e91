"""Migrations run down to nothing and back up on every backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import alembic_config

TABLES = (
    {"users", "identities", "identity_edges", "merges", "merge_identities", "api_keys"}
    | {
        "ch_records",
        "ch_orders",
        "ch_reservations",
        "ch_cart_items",
        "ch_events",
        "ch_dead_letters",
        "ch_interest_tags",
    }
    | {"consent_entries", "memberships", "points_entries", "role_grants", "audit_log"}
    | {"wechat_sessions", "wechat_inbox", "phone_codes", "wechat_sync_state", "refresh_tokens"}
    | {"audiences", "audience_members", "audience_events", "audience_follower", "changes_head"}
)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    cfg = alembic_config(database_url)
    assert TABLES <= await _tables(database_url)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.downgrade, cfg, "base").result()
    assert await _tables(database_url) == set()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, cfg, "heads").result()
    assert TABLES <= await _tables(database_url)
