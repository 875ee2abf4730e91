"""Schema assembly: each domain contributes its Query, Mutation and Subscription fields."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from graphql_schema.channel_data import ChannelDataMutation, ChannelDataQuery
from graphql_schema.entitlements import EntitlementsMutation
from graphql_schema.extensions import ErrorCodes
from graphql_schema.identity import IdentityMutation, IdentityQuery
from graphql_schema.sync import SyncSubscription
from graphql_schema.wechat import WechatMutation

Query = merge_types("Query", (IdentityQuery, ChannelDataQuery))
Mutation = merge_types(
    "Mutation", (WechatMutation, IdentityMutation, EntitlementsMutation, ChannelDataMutation)
)
Subscription = merge_types("Subscription", (SyncSubscription,))

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[ErrorCodes],
)
