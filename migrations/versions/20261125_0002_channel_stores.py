"""Channel stores: raw records, orders, cart items, events and dead letters, per channel.

Revision ID: 20261125_0002
Revises:
Create Date: 2026-11-25 18:18:08.459532
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0002"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("channel",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ch_cart_items",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_cart_items")),
        sa.UniqueConstraint("channel", "identity_ref", "sku", name="uq_ch_cart_items_channel_ref_sku"),
    )
    with op.batch_alter_table("ch_cart_items", schema=None) as batch_op:
        batch_op.create_index("ix_ch_cart_items_identity_ref", ["identity_ref"], unique=False)

    op.create_table(
        "ch_dead_letters",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_dead_letters")),
    )
    with op.batch_alter_table("ch_dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ch_dead_letters_channel_received_at", ["channel", "received_at"], unique=False
        )

    op.create_table(
        "ch_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_events")),
    )
    with op.batch_alter_table("ch_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ch_events_identity_ref_occurred_at", ["identity_ref", "occurred_at"], unique=False
        )

    op.create_table(
        "ch_orders",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_orders")),
        sa.UniqueConstraint("channel", "order_id", name="uq_ch_orders_channel_order_id"),
    )
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ch_orders_identity_ref_placed_at", ["identity_ref", "placed_at"], unique=False
        )

    op.create_table(
        "ch_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dictionary_version", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_records")),
        sa.UniqueConstraint("channel", "source_id", name="uq_ch_records_channel_source_id"),
    )


def downgrade() -> None:
    op.drop_table("ch_records")
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_orders_identity_ref_placed_at")

    op.drop_table("ch_orders")
    with op.batch_alter_table("ch_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_events_identity_ref_occurred_at")

    op.drop_table("ch_events")
    with op.batch_alter_table("ch_dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_dead_letters_channel_received_at")

    op.drop_table("ch_dead_letters")
    with op.batch_alter_table("ch_cart_items", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_cart_items_identity_ref")

    op.drop_table("ch_cart_items")
