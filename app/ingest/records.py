"""Standard shapes the data dictionary turns native channel records into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain import Channel


class RecordRejected(Exception):
    """A record that cannot be accepted; `field` names the offending part (e.g. `data.status`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class StdOrderItem:
    sku: str
    name: str | None
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class StdOrder:
    order_id: str
    status_code: int
    total_cents: int
    currency: str
    items: tuple[StdOrderItem, ...]
    placed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StdCart:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class StdEvent:
    type: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StdReservation:
    reservation_id: str
    service: str
    status_code: int
    starts_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StdRecord:
    """One envelope, validated: the identity is still raw (the identity graph normalizes it)."""

    channel: Channel
    source_id: str
    type: str
    identity_kind: str
    identity_value: str
    identity_namespace: str | None
    occurred_at: datetime
    payload: StdOrder | StdCart | StdEvent | StdReservation
    raw: dict[str, Any]
