"""GraphQL enums, backed by the domain's enums where the domain has them."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.domain import Channel, IdentityKind
from app.domain.entitlements import Purpose

# Registered in place, so the domain's enums are the GraphQL enums.
strawberry.enum(Channel, description="A channel of the company: mini program, official account, APP.")
strawberry.enum(IdentityKind, description="The kinds of identity the graph links.")
strawberry.enum(Purpose, description="What a consent is for.")

__all__ = ["Channel", "IdentityKind", "OrderStatus", "Purpose", "ReservationStatus"]


@strawberry.enum(description="Standard order status of the data dictionary.")
class OrderStatus(Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="Standard reservation status of the data dictionary.")
class ReservationStatus(Enum):
    BOOKED = "BOOKED"
    CONFIRMED = "CONFIRMED"
    ATTENDED = "ATTENDED"
    CANCELLED = "CANCELLED"
    NO_SHOW = "NO_SHOW"
