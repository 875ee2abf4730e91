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
        # Audience leaves: one channel's orders by status and placing time (app/stores/audience_sql.py).
        Index("ix_ch_orders_channel_status_placed", "channel", "status_code", "placed_at", "identity_ref"),
        Index("ix_ch_orders_channel_placed_at_ref", "channel", "placed_at", "identity_ref"),
        Index("ix_ch_orders_channel_paid_at", "channel", "paid_at"),  # funnel PAID steps
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
    # The occurredAt of the earliest update at PAID or later, whatever order updates arrive in.
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


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
    __table_args__ = (
        Index("ix_ch_events_identity_ref_occurred_at", "identity_ref", "occurred_at"),
        # Funnel steps read one type of event in a window.
        Index("ix_ch_events_channel_type_occurred_at", "channel", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class InterestTag(ChannelBase):
    """How many of one identity's events in one channel imply a tag (the dictionary's interest rules).

    Kept at ingestion beside the events, so an audience's `interest` finds a tag's holders by index
    instead of reading every event's properties; keyed by identity like the events themselves.
    """

    __tablename__ = "ch_interest_tags"
    __table_args__ = (
        UniqueConstraint("channel", "identity_ref", "tag", name="uq_ch_interest_tags_channel_ref_tag"),
        Index("ix_ch_interest_tags_tag_channel", "tag", "channel", "identity_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    tag: Mapped[str] = mapped_column(String(200), nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False)


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


# -- The official account's own figures (only the OFFICIAL_ACCOUNT store holds rows) -------------


class OaDay(ChannelBase):
    """One day of the official account as WeChat's data APIs report it; a re-pull replaces it."""

    __tablename__ = "oa_days"

    date: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, Beijing time
    new_followers: Mapped[int] = mapped_column(Integer, nullable=False)
    cancelled_followers: Mapped[int] = mapped_column(Integer, nullable=False)
    cumulative_followers: Mapped[int] = mapped_column(Integer, nullable=False)
    article_reads: Mapped[int] = mapped_column(Integer, nullable=False)
    article_shares: Mapped[int] = mapped_column(Integer, nullable=False)
    messages_received: Mapped[int] = mapped_column(Integer, nullable=False)
    pulled_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OaArticle(ChannelBase):
    """An article (WeChat's msgid: msg_data_id and its 1-based place in the message) and its tags."""

    __tablename__ = "oa_articles"
    __table_args__ = (Index("ix_oa_articles_published_at", "published_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OaArticleDay(ChannelBase):
    """An article's figures on one day; an article's totals are the sum of its days."""

    __tablename__ = "oa_article_days"
    __table_args__ = (Index("ix_oa_article_days_date", "date"),)

    article_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[str] = mapped_column(String(10), primary_key=True)
    reads: Mapped[int] = mapped_column(Integer, nullable=False)
    shares: Mapped[int] = mapped_column(Integer, nullable=False)
    likes: Mapped[int] = mapped_column(Integer, nullable=False)


class OaComment(ChannelBase):
    """A comment on an article, as `comment/list` reports it; a re-pull replaces the article's."""

    __tablename__ = "oa_comments"
    __table_args__ = (
        Index("ix_oa_comments_article_id_at", "article_id", "at"),
        Index("ix_oa_comments_identity_ref", "identity_ref"),
    )

    id: Mapped[str] = mapped_column(String(96), primary_key=True)  # article id : user_comment_id
    article_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # The commenter's openid as every channel store names an identity, so a person's export and
    # erasure include their comments.
    identity_ref: Mapped[str] = mapped_column(String(REF_LEN), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    likes: Mapped[int] = mapped_column(Integer, nullable=False)
