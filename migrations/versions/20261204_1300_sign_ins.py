"""Sign-ins through Troika (wechatLogin, phoneLogin): the identity, the channel and the time.

Revision ID: 20261204_1300
Revises: 20261204_1130
Create Date: 2026-12-04 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_1300"
down_revision: str | None = "20261204_1130"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_ins",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_ins")),
    )
    op.create_index("ix_sign_ins_identity_ref_at", "sign_ins", ["identity_ref", "at"])
    op.create_index("ix_sign_ins_channel_at", "sign_ins", ["channel", "at"])


def downgrade() -> None:
    op.drop_index("ix_sign_ins_channel_at", table_name="sign_ins")
    op.drop_index("ix_sign_ins_identity_ref_at", table_name="sign_ins")
    op.drop_table("sign_ins")
