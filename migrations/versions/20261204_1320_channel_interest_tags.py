"""Channel stores: kept interest tags per identity, and order indexes for audience leaves.

Revision ID: 20261204_1320_channel
Revises: 20261204_1310_channel
Create Date: 2026-12-04 13:20:00
"""

import os
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from app.ingest.dictionary import load_dictionary
from app.stores.interest_tags import REBUILD_CHUNK, tag_counts

revision: str = "20261204_1320_channel"
down_revision: str | None = "20261204_1310_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ch_interest_tags",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("identity_ref", sa.String(length=220), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ch_interest_tags")),
        sa.UniqueConstraint("channel", "identity_ref", "tag", name="uq_ch_interest_tags_channel_ref_tag"),
    )
    with op.batch_alter_table("ch_interest_tags", schema=None) as batch_op:
        batch_op.create_index("ix_ch_interest_tags_tag_channel", ["tag", "channel", "identity_ref"])
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ch_orders_channel_status_placed", ["channel", "status_code", "placed_at", "identity_ref"]
        )
        batch_op.create_index("ix_ch_orders_channel_placed_at_ref", ["channel", "placed_at", "identity_ref"])
    _count_existing_events()


def _count_existing_events() -> None:
    """Events stored before this revision get their tags counted by the configured dictionary."""
    path = os.environ.get("TROIKA_DATA_DICTIONARY_PATH")
    dictionary = load_dictionary(Path(path) if path else None)
    bind = op.get_bind()
    events = sa.table(
        "ch_events",
        sa.column("id", sa.BigInteger()),
        sa.column("channel", sa.String()),
        sa.column("identity_ref", sa.String()),
        sa.column("type", sa.String()),
        sa.column("properties", sa.JSON()),
    )
    tags = sa.table(
        "ch_interest_tags",
        sa.column("channel", sa.String()),
        sa.column("identity_ref", sa.String()),
        sa.column("tag", sa.String()),
        sa.column("events", sa.Integer()),
    )
    stmt = sa.select(events.c.id, events.c.channel, events.c.identity_ref, events.c.type, events.c.properties)
    counts: dict[tuple[str, str, str], int] = {}
    last = 0
    while rows := bind.execute(
        stmt.where(events.c.id > last).order_by(events.c.id).limit(REBUILD_CHUNK)
    ).all():
        last = rows[-1][0]
        for row in tag_counts(((r[1], r[2], r[3], r[4]) for r in rows), dictionary):
            key = (row["channel"], row["identity_ref"], row["tag"])
            counts[key] = counts.get(key, 0) + row["events"]
    out = [{"channel": c, "identity_ref": r, "tag": t, "events": n} for (c, r, t), n in counts.items()]
    for i in range(0, len(out), REBUILD_CHUNK):
        bind.execute(tags.insert(), out[i : i + REBUILD_CHUNK])


def downgrade() -> None:
    with op.batch_alter_table("ch_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_orders_channel_placed_at_ref")
        batch_op.drop_index("ix_ch_orders_channel_status_placed")
    with op.batch_alter_table("ch_interest_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_ch_interest_tags_tag_channel")
    op.drop_table("ch_interest_tags")
