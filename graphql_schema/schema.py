"""Schema assembly: each domain contributes its Query, Mutation and Subscription fields."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions import SchemaExtension
from strawberry.extensions.directives import DirectivesExtension, DirectivesExtensionSync
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.observability.metrics import OperationMetrics
from app.observability.tracing import OperationSpans
from graphql_schema.audiences import AudienceMutation, AudienceQuery, AudienceSubscription
from graphql_schema.audit import AuditQuery
from graphql_schema.caller import CallerQuery
from graphql_schema.campaigns import CampaignMutation, CampaignQuery
from graphql_schema.channel_data import ChannelDataMutation, ChannelDataQuery
from graphql_schema.compiled.hook import CompiledReads
from graphql_schema.entitlements import EntitlementsQuery
from graphql_schema.entitlements_mutations import EntitlementsMutation
from graphql_schema.extensions import CacheableQuery, ErrorCodes
from graphql_schema.funnel import FunnelQuery
from graphql_schema.hooks import CachedHooksRunner
from graphql_schema.identity import IdentityMutation, IdentityQuery
from graphql_schema.jobs import JobsQuery
from graphql_schema.official_account import OfficialAccountMutation, OfficialAccountQuery
from graphql_schema.pii import PiiMutation, PiiQuery
from graphql_schema.ratelimits import OperationRateLimits
from graphql_schema.replica_reads import ReplicaReads
from graphql_schema.sessions import SessionMutation
from graphql_schema.sync import SyncSubscription
from graphql_schema.validation import (
    AliasLimit,
    CachedParse,
    CallerExecutor,
    CallerValidation,
    DepthLimit,
    TokenLimit,
)
from graphql_schema.wechat import WechatMutation

Query = merge_types(
    "Query",
    (
        IdentityQuery,
        ChannelDataQuery,
        EntitlementsQuery,
        AuditQuery,
        PiiQuery,
        CallerQuery,
        JobsQuery,
        OfficialAccountQuery,
        AudienceQuery,
        CampaignQuery,
        FunnelQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        WechatMutation,
        SessionMutation,
        IdentityMutation,
        EntitlementsMutation,
        ChannelDataMutation,
        PiiMutation,
        OfficialAccountMutation,
        AudienceMutation,
        CampaignMutation,
    ),
)
Subscription = merge_types("Subscription", (SyncSubscription, AudienceSubscription))


class TroikaSchema(Schema):
    """Errors are logged once, by ErrorCodes, and only the unexpected ones (with their trace id)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None

    def get_extensions(self, sync: bool = False) -> list[SchemaExtension]:
        """strawberry's, less the tracing extension while nothing is traced (its hooks would only yield)."""
        idle = None if OperationSpans.enabled else OperationSpans
        resolved: list[SchemaExtension] = [
            ext if isinstance(ext, SchemaExtension) else ext() for ext in self.extensions if ext is not idle
        ]
        if self.directives:
            resolved.append(DirectivesExtensionSync() if sync else DirectivesExtension())
        return resolved

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)


schema = TroikaSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Every operation is bounded (graphql_schema/limits.py, validation.py), limits read from the
    # request's settings. Clients send the same few documents over and over: parse and validate
    # each once (the caches live at module level, shared by the per-request extension instances).
    extensions=[
        OperationMetrics,  # outermost: counts errors after ErrorCodes gave them their codes
        OperationSpans,  # one span an operation, when tracing is on (app/observability/tracing.py)
        ReplicaReads,  # queries on a read replica, when the hub has some (app/db/replicas.py)
        ErrorCodes,
        CacheableQuery,
        TokenLimit,
        lambda: CachedParse(maxsize=1024),
        DepthLimit,
        AliasLimit,
        CallerValidation,
        OperationRateLimits,  # after validation: only operations that would run are counted
        CompiledReads,  # last: a known query answered by its compiled plan (graphql_schema/compiled/)
    ],
    execution_context_class=CallerExecutor,
)
