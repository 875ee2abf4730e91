"""Campaigns and their deliveries: one row per (campaign, user), written before WeChat is called.

Revision ID: 20261204_1130
Revises: 20261204_1020
Create Date: 2026-12-04 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1130"
down_revision: str | None = "20261204_1020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("audience", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=200), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_campaigns_idempotency_key")),
    )
    op.create_table(
        "campaign_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("openid", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_deliveries_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_deliveries")),
        sa.UniqueConstraint("campaign_id", "user_id", name=op.f("uq_campaign_deliveries_campaign_id")),
    )
    op.create_index(
        "ix_campaign_deliveries_campaign_status", "campaign_deliveries", ["campaign_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_deliveries_campaign_status", table_name="campaign_deliveries")
    op.drop_table("campaign_deliveries")
    op.drop_table("campaigns")
