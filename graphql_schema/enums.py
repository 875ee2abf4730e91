"""GraphQL enums, backed by the domain's enums where the domain has them."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.domain import Channel, IdentityKind

# Registered in place, so the domain's enums are the GraphQL enums.
strawberry.enum(Channel, description="A channel of the company: mini program, official account, APP.")
strawberry.enum(IdentityKind, description="The kinds of identity the graph links.")

__all__ = ["Channel", "IdentityKind", "OrderStatus", "Purpose"]


@strawberry.enum(description="Standard order status of the data dictionary.")
class OrderStatus(Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="What a consent is for.")
class Purpose(Enum):
    LOCATION = "LOCATION"
    PUSH = "PUSH"
    MARKETING = "MARKETING"
    LOCAL_STORAGE = "LOCAL_STORAGE"
    PERSONALIZATION = "PERSONALIZATION"
