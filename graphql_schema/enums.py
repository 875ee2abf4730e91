"""GraphQL enums, backed by the domain's enums where the domain has them."""

from __future__ import annotations

from enum import Enum

import strawberry

from app import domain

Channel = strawberry.enum(domain.Channel, description="A channel of the company: mini program, official account, APP.")
IdentityKind = strawberry.enum(domain.IdentityKind, description="The kinds of identity the graph links.")


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
