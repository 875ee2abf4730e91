"""Background jobs in GraphQL: admins see the jobs that failed for good, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.jobs.runner import FailedJob as FailedJobRecord
from graphql_schema.permissions import AUTHENTICATED
from resolvers import jobs as resolve


@strawberry.type(description="A background job that failed after its last attempt.")
class FailedJob:
    id: strawberry.ID = strawberry.field(description="The job's id (`troika jobs retry <id>` runs it again).")
    task: str = strawberry.field(
        description="What it does: wechat.process_push (an official-account push), wechat.sweep_inbox, "
        "jobs.retry_stalled or jobs.clean_up."
    )
    attempts: int = strawberry.field(description="How many times it was tried.")
    arguments: JSON = strawberry.field(description="Its arguments, e.g. the push's id.")
    scheduled_at: datetime | None = strawberry.field(
        description="When its last attempt was due (UTC); null when it was due at once."
    )
    reason: str | None = strawberry.field(
        description="Why it failed, when Troika keeps it (a push: WeChat's last answer); else the "
        "worker's log says."
    )

    @classmethod
    def of(cls, f: FailedJobRecord) -> FailedJob:
        arguments: Any = f.job.args
        return cls(
            id=strawberry.ID(str(f.job.id)),
            task=f.job.task,
            attempts=f.job.attempts,
            arguments=arguments,
            scheduled_at=f.job.scheduled_at,
            reason=f.reason,
        )


@strawberry.type
class JobsQuery:
    @strawberry.field(
        description="Background jobs that failed for good, newest first (admins).",
        permission_classes=AUTHENTICATED,
    )
    async def failed_jobs(
        self,
        info: Info[RequestContext, None],
        first: Annotated[int, strawberry.argument(description="How many, at most (capped).")] = 20,
    ) -> list[FailedJob]:
        return [FailedJob.of(f) for f in await resolve.failed_jobs(info.context, first=first)]
