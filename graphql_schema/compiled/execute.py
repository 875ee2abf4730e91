"""Running a compiled plan: the roots read everything up front, then the schema's own resolvers
(each type's field functions, unchanged) are called straight, without graphql-core's per-field
machinery; values are serialized by the schema's own scalars and enums.

Anything unusual (an error, a null where the schema promises a value, a permission refused) stops
the compiled run: the operation then runs through graphql-core, which answers it as it always has.
"""

from __future__ import annotations

import inspect
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from app.context import RequestContext
from app.domain import Channel
from graphql_schema.compiled.plan import Fields, Plan, UserNeeds, collect, subfields, user_needs
from graphql_schema.enums import OrderStatus
from loaders.compiled import EventsArgs, OrdersArgs, Reads
from resolvers import compiled as resolve
from resolvers.channel_data import status_code_of
from resolvers.paging import page_size

_DEFINITION = GraphQLCoreConverter.DEFINITION_BACKREF


class Fallback(Exception):
    """The compiled run stops; graphql-core runs the operation instead."""


class _Info:
    """What the schema's resolvers use of strawberry's Info: the request context."""

    __slots__ = ("context",)

    def __init__(self, context: RequestContext) -> None:
        self.context = context


class Run:
    """One request's compiled execution of a plan."""

    def __init__(self, strawberry_schema: Any, plan: Plan, variables: VariableValues, ctx: RequestContext):
        self.schema: GraphQLSchema = strawberry_schema._schema
        self.strawberry = strawberry_schema
        self.plan = plan
        self.variables = variables
        self.ctx = ctx
        self.info = _Info(ctx)
        self._fields: dict[tuple[int, ...], Fields] = {}

    def fields_of(self, nodes: list[FieldNode]) -> Fields:
        key = tuple(id(n) for n in nodes)
        found = self._fields.get(key)
        if found is None:
            found = self._fields[key] = subfields(self.plan, nodes, self.variables)
        return found

    async def data(self) -> dict[str, Any]:
        query = self.schema.query_type
        assert query is not None
        out: dict[str, Any] = {}
        for key, nodes in collect(self.plan, [self.plan.operation.selection_set], self.variables).items():
            name = nodes[0].name.value
            if name == "__typename":
                out[key] = query.name
                continue
            field = query.fields[name]
            sfield = _strawberry(field.extensions)
            for permission in sfield.permission_classes:
                if not permission().has_permission(None, self.info):  # type: ignore[arg-type]
                    raise Fallback
            args = get_argument_values(field, nodes[0], self.variables)
            value = await self._root(name, nodes, args)
            out[key] = await self.complete(field.type, nodes, value)
        return out

    async def _root(self, name: str, nodes: list[FieldNode], args: dict[str, Any]) -> Any:
        from graphql_schema.identity import User, UserConnection  # noqa: PLC0415 - cycle

        user_type = self.schema.get_type("User")
        assert isinstance(user_type, GraphQLObjectType)
        if name == "users":
            conn = self.fields_of(nodes)
            user_fields: Fields = {}
            for key, sub in conn.items():
                if sub[0].name.value == "nodes":
                    user_fields.update({f"{key}.{k}": v for k, v in self.fields_of(sub).items()})
            reads = self._reads(user_type, user_fields)
            page = await resolve.users(self.ctx, reads, first=args["first"], after=args.get("after"))
            return UserConnection.of(page)
        reads = self._reads(user_type, self.fields_of(nodes))
        if name == "me":
            found = await resolve.me(self.ctx, reads)
        else:
            identity = args.get("identity")
            parts = None
            if identity is not None:
                parts = (identity["kind"], identity["value"], identity.get("namespace"))
                if identity.get("unionid") is not None:
                    raise Fallback  # not a part of a lookup; the resolvers ignore it the same way
            found = await resolve.user(self.ctx, reads, user_id=args.get("id"), identity=parts)
        return None if found is None else User(record=found)

    def _reads(self, user_type: GraphQLObjectType, fields: Fields) -> Reads:
        needs = user_needs(self.plan, user_type, fields, self.variables, UserNeeds())
        orders = []
        for a in needs.orders:
            status = a.get("status")
            orders.append(
                OrdersArgs(
                    channel=_channel(a.get("channel")),
                    status_code=None if status is None else status_code_of(self.ctx, _status(status).value),
                    first=page_size(self.ctx, a.get("first"), default=20),
                    before=_cursor(a.get("after")),
                )
            )
        behavior = []
        for a in needs.behavior:
            types = a.get("types")
            behavior.append(
                EventsArgs(
                    channel=_channel(a.get("channel")),
                    types=tuple(sorted(set(types))) if types else None,
                    first=page_size(self.ctx, a.get("first"), default=50),
                    before=_cursor(a.get("after")),
                )
            )
        return Reads(
            hub=frozenset(needs.hub),
            cart=needs.cart,
            interests=needs.interests,
            orders=tuple(orders),
            behavior=tuple(behavior),
        )

    async def complete(self, gtype: GraphQLOutputType, nodes: list[FieldNode], value: Any) -> Any:
        if isinstance(gtype, GraphQLNonNull):
            done = await self.complete(gtype.of_type, nodes, value)
            if done is None:
                raise Fallback
            return done
        if value is None:
            return None
        if isinstance(gtype, GraphQLList):
            return [await self.complete(gtype.of_type, nodes, v) for v in value]
        if isinstance(gtype, (GraphQLScalarType, GraphQLEnumType)):
            return gtype.serialize(value)
        assert isinstance(gtype, GraphQLObjectType)
        out: dict[str, Any] = {}
        for key, sub in self.fields_of(nodes).items():
            name = sub[0].name.value
            if name == "__typename":
                out[key] = gtype.name
                continue
            field = gtype.fields[name]
            out[key] = await self.complete(
                field.type, sub, await self._resolve(field.extensions, field, sub[0], value)
            )
        return out

    async def _resolve(self, extensions: Any, field: Any, node: FieldNode, source: Any) -> Any:
        sfield = _strawberry(extensions)
        resolver = sfield.base_resolver
        if resolver is None:
            return getattr(source, sfield.python_name)
        if sfield.permission_classes or sfield.extensions:
            raise Fallback
        kwargs = convert_arguments(
            get_argument_values(field, node, self.variables),
            sfield.arguments,
            scalar_registry=self.strawberry.schema_converter.scalar_registry,
            config=self.strawberry.config,
        )
        if resolver.info_parameter is not None:
            kwargs[resolver.info_parameter.name] = self.info
        func: Any = resolver.wrapped_func
        result = func(source, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def _strawberry(extensions: Any) -> StrawberryField:
    found = (extensions or {}).get(_DEFINITION)
    if not isinstance(found, StrawberryField):
        raise Fallback
    return found


def _channel(value: Any) -> Channel | None:
    return None if value is None else Channel(value)


def _status(value: Any) -> OrderStatus:
    return value if isinstance(value, OrderStatus) else OrderStatus(value)


def _cursor(after: str | None) -> Any:
    from app.cursors import decode_cursor  # noqa: PLC0415

    return decode_cursor(after)
