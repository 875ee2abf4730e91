"""The channels' own data as the domain knows it: orders, reservations, cart lines, behaviour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain import Channel


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    channel: Channel
    order_id: str
    identity_ref: str
    status_code: int
    total_cents: int
    currency: str
    items: list[dict[str, Any]]
    placed_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReservationRow:
    id: int
    channel: Channel
    reservation_id: str
    identity_ref: str
    service: str
    status_code: int
    starts_at: datetime | None
    booked_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CartRow:
    channel: Channel
    identity_ref: str
    sku: str
    quantity: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    channel: Channel
    identity_ref: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    channel: Channel
    source_id: str | None
    payload: str
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class Interest:
    tag: str
    weight: float


def group_by_ref(rows: Sequence[Any]) -> dict[str, list[Any]]:
    """Rows keyed by the identity that holds them, as channel stores name it."""
    out: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        out[row.identity_ref].append(row)
    return out
