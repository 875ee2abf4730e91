"""The cross-channel funnel (公众号引流 → 小程序转化 → APP 留存) in GraphQL."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.services.funnel import FunnelResult, Step
from graphql_schema.enums import Channel
from resolvers import funnel as resolve

Ctx = Info[RequestContext, None]


@strawberry.enum(description="What a person does at one step of a funnel.")
class FunnelAction(Enum):
    SEEN = strawberry.enum_value(
        "SEEN", description="First appears in the channel (a record or an identity of it)."
    )
    FOLLOWED = strawberry.enum_value("FOLLOWED", description="Follows the official account.")
    ORDERED = strawberry.enum_value("ORDERED", description="Places an order.")
    PAID = strawberry.enum_value("PAID", description="Has an order reach PAID or later.")
    LOGGED_IN = strawberry.enum_value(
        "LOGGED_IN", description="Signs in (a login through Troika, or an ingested login event)."
    )
    EVENT = strawberry.enum_value("EVENT", description="A behaviour event of eventType.")


@strawberry.input(description="One step of a funnel.")
class FunnelStep:
    action: FunnelAction = strawberry.field(description="What the person does.")
    channel: Channel | None = strawberry.field(default=None, description="Any channel when omitted.")
    event_type: str | None = strawberry.field(default=None, description="Required with EVENT.")


@strawberry.type(description="How many persons reached one step.")
class FunnelStepResult:
    index: int = strawberry.field(description="0-based position of the step.")
    persons: int = strawberry.field(
        description="Persons (merged users counted once) who reached this step in order."
    )
    conversion_from_previous: float | None = strawberry.field(
        description="Persons here over persons at the previous step (0-1); null for step 0."
    )
    conversion_from_first: float | None = strawberry.field(
        description="Persons here over persons at step 0 (0-1); null for step 0."
    )
    median_hours_from_previous: float | None = strawberry.field(
        description="The median hours from the previous step, over the persons who reached this one."
    )


@strawberry.type(description="One week's entrants and how far they got.")
class FunnelCohort:
    week_start: str = strawberry.field(
        description="The Monday (UTC) of the week in which the cohort reached step 0, as YYYY-MM-DD."
    )
    persons: list[int] = strawberry.field(description="Persons of the cohort at each step.")


@strawberry.type(description="A funnel's figures.")
class Funnel:
    steps: list[FunnelStepResult] = strawberry.field(description="Per step, who reached it.")
    cohorts: list[FunnelCohort] = strawberry.field(description="The same funnel, one row per week of entry.")

    @classmethod
    def of(cls, r: FunnelResult) -> Funnel:
        return cls(
            steps=[
                FunnelStepResult(
                    index=s.index,
                    persons=s.persons,
                    conversion_from_previous=s.conversion_from_previous,
                    conversion_from_first=s.conversion_from_first,
                    median_hours_from_previous=s.median_hours_from_previous,
                )
                for s in r.steps
            ],
            cohorts=[FunnelCohort(week_start=c.week_start, persons=c.persons) for c in r.cohorts],
        )


@strawberry.type
class FunnelQuery:
    @strawberry.field(
        description="Persons who reached the first step within [from, to) and then each next step, in "
        "order, within withinDays of the first (operators)."
    )
    async def funnel(
        self,
        info: Ctx,
        steps: list[FunnelStep],
        from_: Annotated[datetime, strawberry.argument(name="from", description="Step 0 at or after this.")],
        to: Annotated[datetime, strawberry.argument(description="Step 0 before this.")],
        within_days: Annotated[
            int | None,
            strawberry.argument(description="Later steps within this many days of step 0 (1-365)."),
        ] = 30,
    ) -> Funnel:
        found = await resolve.funnel(
            info.context,
            steps=[Step(s.action.name, s.channel, s.event_type) for s in steps],
            start=from_,
            end=to,
            within_days=30 if within_days is None else within_days,
        )
        return Funnel.of(found)
