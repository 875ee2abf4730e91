"""A person's portrait as the domain knows it: product preferences, lifetime traits, the journey."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.domain import Channel


@dataclass
class Preference:
    sku: str
    name: str | None = None
    name_at: datetime | None = None
    views: int = 0
    favorites: int = 0
    cart_adds: int = 0
    purchases: int = 0
    score: float = 0.0
    channels: set[Channel] = field(default_factory=set)
    last_at: datetime | None = None


@dataclass(frozen=True)
class Traits:
    lifetime_value_cents: int
    paid_orders: int
    average_order_cents: int | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    orders_by_channel: list[tuple[Channel, int]]
    last_seen_at: datetime | None


@dataclass(frozen=True)
class Presence:
    channel: Channel
    first_seen_at: datetime
    last_seen_at: datetime
    first_order_at: datetime | None


@dataclass(frozen=True)
class Journey:
    path: list[Channel]
    channels: list[Presence]
