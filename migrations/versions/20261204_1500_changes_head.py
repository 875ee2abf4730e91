"""The outbox's head: one row holding the newest cursor handed out, the lock appenders take.

Revision ID: 20261204_1500
Revises: 20261204_1400
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1500"
down_revision: str | None = "20261204_1400"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "changes_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes_head")),
    )
    op.execute("INSERT INTO changes_head (id, last) SELECT 1, COALESCE(MAX(id), 0) FROM changes")


def downgrade() -> None:
    op.drop_table("changes_head")
