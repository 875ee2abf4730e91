"""Channel stores: indexes a funnel step reads by (behaviour events of a type, orders by payment time).

Revision ID: 20261204_1310_channel
Revises: 20261204_1300_channel
Create Date: 2026-12-04 13:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261204_1310_channel"
down_revision: str | None = "20261204_1300_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ch_events_channel_type_occurred_at", "ch_events", ["channel", "type", "occurred_at"])
    op.create_index("ix_ch_orders_channel_paid_at", "ch_orders", ["channel", "paid_at"])


def downgrade() -> None:
    op.drop_index("ix_ch_orders_channel_paid_at", table_name="ch_orders")
    op.drop_index("ix_ch_events_channel_type_occurred_at", table_name="ch_events")
