"""The official account's own data: days, articles (per day) and comments, in the channel stores.

Revision ID: 20261204_0010
Revises: 20261125_0007_channel
Create Date: 2026-12-04 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_0010"
down_revision: str | None = "20261125_0007_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oa_days",
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("new_followers", sa.Integer(), nullable=False),
        sa.Column("cancelled_followers", sa.Integer(), nullable=False),
        sa.Column("cumulative_followers", sa.Integer(), nullable=False),
        sa.Column("article_reads", sa.Integer(), nullable=False),
        sa.Column("article_shares", sa.Integer(), nullable=False),
        sa.Column("messages_received", sa.Integer(), nullable=False),
        sa.Column("pulled_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("date", name=op.f("pk_oa_days")),
    )
    op.create_table(
        "oa_articles",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("published_at", AT, nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oa_articles")),
    )
    op.create_index("ix_oa_articles_published_at", "oa_articles", ["published_at"])
    op.create_table(
        "oa_article_days",
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "date", name=op.f("pk_oa_article_days")),
    )
    op.create_index("ix_oa_article_days_date", "oa_article_days", ["date"])
    op.create_table(
        "oa_comments",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oa_comments")),
    )
    op.create_index("ix_oa_comments_article_id_at", "oa_comments", ["article_id", "at"])
    op.create_index("ix_oa_comments_identity_ref", "oa_comments", ["identity_ref"])


def downgrade() -> None:
    op.drop_index("ix_oa_comments_identity_ref", table_name="oa_comments")
    op.drop_index("ix_oa_comments_article_id_at", table_name="oa_comments")
    op.drop_table("oa_comments")
    op.drop_index("ix_oa_article_days_date", table_name="oa_article_days")
    op.drop_table("oa_article_days")
    op.drop_index("ix_oa_articles_published_at", table_name="oa_articles")
    op.drop_table("oa_articles")
    op.drop_table("oa_days")
