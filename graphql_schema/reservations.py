"""Reservations federated over the channel stores: bookings of a service in any channel."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.domain.channel_data import ReservationRow
from app.ingest.dictionary import DataDictionary as Dictionary
from graphql_schema.common import PageInfo
from graphql_schema.enums import Channel, ReservationStatus
from loaders.channel_data import Page


@strawberry.type(
    description="A booking of a service (a table, a photo session, a course, a room) made in any channel."
)
class Reservation:
    id: strawberry.ID = strawberry.field(description="Troika's id of the reservation.")
    channel: Channel = strawberry.field(description="The channel it was booked in.")
    source_id: str = strawberry.field(description="The reservation's id in its channel.")
    service: str = strawberry.field(description="What was booked, e.g. 儿童摄影.")
    status: ReservationStatus = strawberry.field(description="Standard status.")
    starts_at: datetime | None = strawberry.field(description="When the booked service takes place (UTC).")
    booked_at: datetime = strawberry.field(description="When it was booked (UTC).")
    updated_at: datetime = strawberry.field(description="When its status last changed (UTC).")

    @classmethod
    def of(cls, row: ReservationRow, dictionary: Dictionary) -> Reservation:
        return cls(
            id=strawberry.ID(f"{row.channel.value}:{row.id}"),
            channel=row.channel,
            source_id=row.reservation_id,
            service=row.service,
            status=ReservationStatus[dictionary.reservation_status_names[row.status_code]],
            starts_at=row.starts_at,
            booked_at=row.booked_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A page of reservations, newest booking first.")
class ReservationConnection:
    nodes: list[Reservation] = strawberry.field(description="The reservations of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="How many reservations match, over all pages.")

    @classmethod
    def of(cls, page: Page[ReservationRow], dictionary: Dictionary) -> ReservationConnection:
        return cls(
            nodes=[Reservation.of(r, dictionary) for r in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )
