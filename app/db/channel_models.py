"""Channel-store tables: each channel's records, keyed by the channel identity that sent them.

All three channel stores share these definitions (a `channel` column tells them apart), so they
can live in the hub database, in one database of their own, or each in its own. Nothing here
holds a unified user id: merges and unmerges move identity edges, never channel data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.models import NAMING
from app.db.types import BigId, UTCDateTime

# `identity_ref` is "KIND|namespace|value" of the identity the channel sent the record under; a
# phone's value is its blind index (app/pii.py), so no channel store holds a phone in clear.
REF_LEN = 220


class ChannelBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RawRecord(ChannelBase):
    """Every accepted record as it arrived, so it can be reprocessed when the dictionary changes."""

    __tablename__ = "ch_records"
    __table_args__ = (
        UniqueConstraint("channel", "source_id", name="uq_ch_records_channel_source_id"),
        Index("ix_ch_records_identity_ref", "identity_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    source_id: Mapped[str] = mapped_column(String(128), nullable=False)
    type: Mapped[str] = mapped_column(String(24), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    # A phone identity's ciphertext; the payload's `identity.value` is then null.
    identity_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    dictionary_version: Mapped[str] = mapped_column(String(40), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ChannelOrder(ChannelBase):
    """An order's latest standardized state; `updated_at` is the occurredAt that set it."""

    __tablename__ = "ch_orders"
    __table_args__ = (
        UniqueConstraint("channel", "order_id", name="uq_ch_orders_channel_order_id"),
        Index("ix_ch_orders_identity_ref_placed_at", "identity_ref", "placed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    order_id: Mapped[str] = mapped_column(String(128), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    total_cents: Mapped[int] = mapped_column(BigId, nullable=False)
    currency: Mapped[str] = mapped_column(String(8), nullable=False)
    # Lines travel with the order: one read gives the order and its items.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ChannelReservation(ChannelBase):
    """A reservation's latest standardized state; `updated_at` is the occurredAt that set it."""

    __tablename__ = "ch_reservations"
    __table_args__ = (
        UniqueConstraint("channel", "reservation_id", name="uq_ch_reservations_channel_reservation_id"),
        Index("ix_ch_reservations_identity_ref_booked_at", "identity_ref", "booked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    reservation_id: Mapped[str] = mapped_column(String(128), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    service: Mapped[str] = mapped_column(String(200), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The occurredAt of the earliest record of it: when it was booked.
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ChannelCartItem(ChannelBase):
    """A SKU in one identity's cart in one channel; quantity 0 is kept as a removal."""

    __tablename__ = "ch_cart_items"
    __table_args__ = (
        UniqueConstraint("channel", "identity_ref", "sku", name="uq_ch_cart_items_channel_ref_sku"),
        Index("ix_ch_cart_items_identity_ref", "identity_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    sku: Mapped[str] = mapped_column(String(128), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ChannelEvent(ChannelBase):
    """A behaviour event."""

    __tablename__ = "ch_events"
    __table_args__ = (Index("ix_ch_events_identity_ref_occurred_at", "identity_ref", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class DeadLetter(ChannelBase):
    """A rejected record, kept with its reason: ingestion loses nothing.

    The payload is sealed whole (it may hold a phone anywhere); `identity_ref` names the identity
    when the envelope's was readable, so erasure finds the person's rejected records too.
    """

    __tablename__ = "ch_dead_letters"
    __table_args__ = (
        Index("ix_ch_dead_letters_channel_received_at", "channel", "received_at"),
        Index("ix_ch_dead_letters_identity_ref", "identity_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    source_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    identity_ref: Mapped[str | None] = mapped_column(String(REF_LEN), nullable=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
