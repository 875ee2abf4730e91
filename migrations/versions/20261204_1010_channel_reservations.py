"""Channel stores: reservations (a booking's latest state per channel and reservation id).

Revision ID: 20261204_1010_channel
Revises: 20261125_0007_channel
Create Date: 2026-12-04 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1010_channel"
down_revision: str | None = "20261204_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ch_reservations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("reservation_id", sa.String(length=128), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_reservations")),
        sa.UniqueConstraint("channel", "reservation_id", name="uq_ch_reservations_channel_reservation_id"),
    )
    with op.batch_alter_table("ch_reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ch_reservations_identity_ref_booked_at", ["identity_ref", "booked_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ch_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_reservations_identity_ref_booked_at")
    op.drop_table("ch_reservations")
