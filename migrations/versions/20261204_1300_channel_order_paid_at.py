"""Channel orders: when an order reached PAID (the occurredAt of its earliest update at PAID or later).

Backfill: the stores kept no time of payment. An order now at PAID gets its `updated_at` (the
update that set PAID); one now at SHIPPED or COMPLETED gets its `placed_at` (when it was paid is
lost; the placed time is what the funnel used before). Others stay NULL. The codes are the
standard order status codes (1 PAID, 2 SHIPPED, 3 COMPLETED) every channel's statuses map onto.

Revision ID: 20261204_1300_channel
Revises: 20261204_1010_channel
Create Date: 2026-12-04 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1300_channel"
down_revision: str | None = "20261204_1010_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE ch_orders SET paid_at = updated_at WHERE status_code = 1")
    op.execute("UPDATE ch_orders SET paid_at = placed_at WHERE status_code IN (2, 3)")


def downgrade() -> None:
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.drop_column("paid_at")
