"""WeChat: session keys (server-side only), the official-account inbox, SMS codes, backfill state.

Revision ID: 20261125_0006
Revises: 20261125_0005
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0006"
down_revision: str | None = "20261125_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wechat_sessions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("openid", sa.String(length=128), nullable=False),
        sa.Column("sealed_key", sa.Text(), nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_sessions")),
        sa.UniqueConstraint("appid", "openid", name="uq_wechat_sessions_appid_openid"),
    )
    op.create_table(
        "wechat_inbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", AT, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", AT, nullable=True),
        sa.Column("processed_at", AT, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_inbox")),
        sa.UniqueConstraint("appid", "dedupe_key", name="uq_wechat_inbox_appid_dedupe_key"),
        sa.UniqueConstraint("appid", "timestamp", "nonce", name="uq_wechat_inbox_appid_timestamp_nonce"),
    )
    op.create_index("ix_wechat_inbox_status_id", "wechat_inbox", ["status", "id"])
    op.create_table(
        "phone_codes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("expires_at", AT, nullable=False),
        sa.Column("used_at", AT, nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_codes")),
    )
    op.create_index("ix_phone_codes_phone_hash_id", "phone_codes", ["phone_hash", "id"])
    op.create_table(
        "wechat_sync_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.String(length=128), nullable=True),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wechat_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("wechat_sync_state")
    op.drop_index("ix_phone_codes_phone_hash_id", table_name="phone_codes")
    op.drop_table("phone_codes")
    op.drop_index("ix_wechat_inbox_status_id", table_name="wechat_inbox")
    op.drop_table("wechat_inbox")
    op.drop_table("wechat_sessions")
