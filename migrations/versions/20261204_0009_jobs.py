"""Background jobs: procrastinate's queue (PostgreSQL only) and the inbox's clean-up index.

On SQLite the queue lives in the process (app/jobs/queue.py); nothing to create for it.

Revision ID: 20261204_0009
Revises: 20261125_0008
Create Date: 2026-12-04 09:40:00
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

revision: str = "20261204_0009"
down_revision: str | None = "20261125_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What procrastinate's schema creates (3.x), for downgrade.
_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)
_TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def _script(sql: str) -> None:
    """Run a multi-statement script as it is: asyncpg's simple protocol, no bind parameters."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    await_only(driver.execute(sql))


def upgrade() -> None:
    op.create_index("ix_wechat_inbox_status_processed_at", "wechat_inbox", ["status", "processed_at"])
    if op.get_bind().dialect.name == "postgresql":
        _script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        _script(
            """
            DO $$ DECLARE f record; BEGIN
              FOR f IN SELECT oid::regprocedure AS sig FROM pg_proc WHERE proname LIKE 'procrastinate%' LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || f.sig || ' CASCADE';
              END LOOP;
            END $$;
            """
        )
        for type_ in _TYPES:
            op.execute(f"DROP TYPE IF EXISTS {type_} CASCADE")
    op.drop_index("ix_wechat_inbox_status_processed_at", table_name="wechat_inbox")
