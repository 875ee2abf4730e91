"""Live audience membership: who is in each saved audience, its entries and exits, the follower's cursor.

Revision ID: 20261204_1400
Revises: 20261204_1300
Create Date: 2026-12-04 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1400"
down_revision: str | None = "20261204_1300"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("audiences", sa.Column("live_from", _ID, nullable=True))
    op.create_table(
        "audience_members",
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("audience_id", "user_id", name=op.f("pk_audience_members")),
    )
    op.create_index("ix_audience_members_user_id", "audience_members", ["user_id"])
    op.create_table(
        "audience_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("entered", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_events")),
    )
    op.create_index("ix_audience_events_audience_id", "audience_events", ["audience_id", "id"])
    op.create_index("ix_audience_events_at", "audience_events", ["at"])
    op.create_table(
        "audience_follower",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cursor", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_follower")),
    )
    op.execute("INSERT INTO audience_follower (id, cursor) SELECT 1, COALESCE(MAX(id), 0) FROM changes")


def downgrade() -> None:
    op.drop_table("audience_follower")
    op.drop_index("ix_audience_events_at", table_name="audience_events")
    op.drop_index("ix_audience_events_audience_id", table_name="audience_events")
    op.drop_table("audience_events")
    op.drop_index("ix_audience_members_user_id", table_name="audience_members")
    op.drop_table("audience_members")
    with op.batch_alter_table("audiences") as batch:
        batch.drop_column("live_from")
