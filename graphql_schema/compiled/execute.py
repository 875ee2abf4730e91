"""Running a compiled plan: the roots read everything up front, then the schema's own resolvers
(each type's field functions, unchanged) are called straight, without graphql-core's per-field
machinery; values are serialized by the schema's own scalars and enums.

Anything unusual (an error, a null where the schema promises a value, a permission refused) stops
the compiled run: the operation then runs through graphql-core, which answers it as it always has.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable
from dataclasses import dataclass, field
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
from graphql_schema.compiled import direct as direct_answers
from graphql_schema.compiled.leaves import PLAIN, Fallback, leaf_of
from graphql_schema.compiled.leaves import leaf as _leaf
from graphql_schema.compiled.plan import Fields, Plan, UserNeeds, collect, subfields, user_needs
from graphql_schema.enums import OrderStatus
from loaders.compiled import EventsArgs, OrdersArgs, Reads, Rows
from resolvers import compiled as resolve
from resolvers.channel_data import status_code_of
from resolvers.paging import page_size

_DEFINITION = GraphQLCoreConverter.DEFINITION_BACKREF


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
        # Selections, shapes and reads depend only on the plan and its inner variables: requests
        # with the same ones share them (a memo of the plan's), others work them out for themselves.
        key = plan.memo_key(variables)
        memo = None if key is None else plan.memos.get(key)
        if memo is None:
            memo = _Memo()
            if key is not None:
                plan.memos[key] = memo
        self._fields = memo.fields
        self._shapes = memo.shapes
        self._needs = memo.needs
        self._memo = memo
        self.rows: Rows | None = None  # the current root's rows, when its users are answered directly

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
        roots = self._fields.get(())
        if roots is None:
            roots = self._fields[()] = collect(self.plan, [self.plan.operation.selection_set], self.variables)
        for key, nodes in roots.items():
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
            kept: list[Rows] = []
            value = await self._root(name, nodes, args, kept)
            self.rows = kept[0] if kept else None
            if self.rows is not None:
                direct_answers.STATS["roots"] += 1
            out[key] = await self.complete(field.type, nodes, value)
            self.rows = None
        return out

    async def _root(self, name: str, nodes: list[FieldNode], args: dict[str, Any], kept: list[Rows]) -> Any:
        from graphql_schema.identity import User, UserConnection  # noqa: PLC0415 - cycle

        user_type = self.schema.get_type("User")
        assert isinstance(user_type, GraphQLObjectType)
        if name == "users":
            conn = self.fields_of(nodes)
            all_nodes = (-1, *(id(n) for n in nodes))  # apart from `fields_of`'s keys
            user_fields = self._fields.get(all_nodes)
            if user_fields is None:
                user_fields = {}
                for key, sub in conn.items():
                    if sub[0].name.value == "nodes":
                        user_fields.update({f"{key}.{k}": v for k, v in self.fields_of(sub).items()})
                self._fields[all_nodes] = user_fields
            reads = self._reads(user_type, user_fields)
            page = await resolve.users(
                self.ctx, reads, first=args["first"], after=args.get("after"), kept=kept
            )
            return UserConnection.of(page)
        reads = self._reads(user_type, self.fields_of(nodes))
        if name == "me":
            found = await resolve.me(self.ctx, reads, kept)
        else:
            identity = args.get("identity")
            parts = None
            if identity is not None:  # as IdentityInput.parts(): a unionid plays no part in a lookup
                parts = (identity["kind"], identity["value"], identity.get("namespace"))
            found = await resolve.user(self.ctx, reads, user_id=args.get("id"), identity=parts, kept=kept)
        return None if found is None else User(record=found)

    def _reads(self, user_type: GraphQLObjectType, fields: Fields) -> Reads:
        """What the roots read for these User fields: the same for every request of this memo with
        the same settings, dictionary and PII right (kept once worked out without an error)."""
        ctx = self.ctx
        pii = ctx.principal.can_read_pii
        kept = self._memo.reads.get((id(fields), pii))
        if kept is not None and kept[0] is ctx.settings and kept[1] is ctx.dictionary:
            return kept[2]
        reads = self._work_out_reads(user_type, fields, pii)
        self._memo.reads[(id(fields), pii)] = (ctx.settings, ctx.dictionary, reads)
        return reads

    def _work_out_reads(self, user_type: GraphQLObjectType, fields: Fields, pii: bool) -> Reads:
        needs = self._needs.get(id(fields))
        if needs is None:
            needs = user_needs(self.plan, user_type, fields, self.variables, UserNeeds())
            self._needs[id(fields)] = needs
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
        direct = self._memo.eligible.get(id(fields))
        if direct is None:
            direct = self._memo.eligible[id(fields)] = direct_answers.eligible(
                user_type, fields, self.variables
            )
            self._memo.orders_n.update(direct_answers.order_index(fields))
        return Reads(
            direct=direct and not pii,
            hub=frozenset(needs.hub),
            cart=needs.cart,
            interests=needs.interests,
            portrait=frozenset(needs.portrait),
            orders=tuple(orders),
            behavior=tuple(behavior),
        )

    def direct_user(self, nodes: list[FieldNode]) -> Callable[[Any, Rows], Any]:
        """The direct builder of a User's selections (kept with the settings and dictionary it used)."""
        ctx = self.ctx
        found = self._memo.direct.get(id(nodes))
        if found is None or found[0] is not ctx.settings or found[1] is not ctx.dictionary:
            answers = direct_answers.Direct(self.strawberry, self.fields_of, self.variables)
            builder = answers.user(nodes, self._memo.orders_n, ctx)
            found = self._memo.direct[id(nodes)] = (ctx.settings, ctx.dictionary, builder)
        return found[2]

    def steps(self, gtype: GraphQLOutputType) -> tuple[tuple[int, Any], ...]:
        """The type unwrapped once: (NON_NULL|LIST|LEAF|OBJECT, the type) from the outside in."""
        found = _STEPS.get(gtype)
        if found is None:
            out: list[tuple[int, Any]] = []
            t: Any = gtype
            while True:
                if isinstance(t, GraphQLNonNull):
                    out.append((_NON_NULL, t))
                elif isinstance(t, GraphQLList):
                    out.append((_LIST, t))
                elif isinstance(t, (GraphQLScalarType, GraphQLEnumType)):
                    out.append((_LEAF, t))
                    break
                else:
                    assert isinstance(t, GraphQLObjectType)
                    out.append((_OBJECT, t))
                    break
                t = t.of_type
            found = _STEPS[gtype] = tuple(out)
        return found

    def shape(self, gtype: GraphQLObjectType, nodes: list[FieldNode]) -> _Shape:
        """How to answer these selections on `gtype`, worked out once per request."""
        key = (id(gtype), id(nodes))  # the node lists live in `_fields` for the whole request
        found = self._shapes.get(key)
        if found is not None:
            return found
        slots = _Shape()
        for response_key, sub in self.fields_of(nodes).items():
            name = sub[0].name.value
            if name == "__typename":
                slots.append(_Slot(response_key, gtype.name, None, None, {}, False, (), sub))
                continue
            field = gtype.fields[name]
            known = _FIELDS.get(id(field))
            if known is None or known.field is not field:
                known = _FIELDS[id(field)] = _field_of(field, self.steps(field.type))
            if known.func is None:
                slots.append(_Slot(response_key, None, known.attr, None, {}, False, known.steps, sub))
                continue
            kwargs: dict[str, Any] = {}
            if field.args:  # a field without arguments has no arguments to work out
                kwargs = convert_arguments(
                    get_argument_values(field, sub[0], self.variables),
                    known.sfield.arguments,
                    scalar_registry=self.strawberry.schema_converter.scalar_registry,
                    config=self.strawberry.config,
                )
            slots.append(
                _Slot(
                    response_key, None, None, known.func, kwargs, known.is_async, known.steps, sub, known.info
                )
            )
        slots.fast = _compiled(slots, self.shape)
        self._shapes[key] = slots
        return slots

    async def complete(self, gtype: GraphQLOutputType, nodes: list[FieldNode], value: Any) -> Any:
        return await self._complete(self.steps(gtype), 0, nodes, value)

    async def _complete(
        self, steps: tuple[tuple[int, Any], ...], i: int, nodes: list[FieldNode], value: Any
    ) -> Any:
        while True:
            kind, t = steps[i]
            if kind == _NON_NULL:
                if value is None:
                    raise Fallback
                i += 1
                continue
            if value is None:
                return None
            if kind == _LEAF:
                return _leaf(t, value)
            if kind == _LIST:
                item = steps[i + 1 :]
                if item[-1][0] == _OBJECT and len(item) <= 2:  # [T] or [T!]: one shape for all items
                    if self.rows is not None and item[-1][1].name == "User":
                        build = self.direct_user(nodes)
                        rows = self.rows
                        return [None if v is None else build(v.record, rows) for v in value]
                    slots = self.shape(item[-1][1], nodes)
                    strict = len(item) == 2
                    out: list[dict[str, Any] | None] = []
                    fast = slots.fast
                    for v in value:
                        if v is None:
                            if strict:
                                raise Fallback
                            out.append(None)
                        elif fast is not None:
                            out.append(fast(v))
                        else:
                            out.append(await self._fill(slots, v))
                    return out
                return [await self._complete(steps, i + 1, nodes, v) for v in value]
            if self.rows is not None and t.name == "User":
                return self.direct_user(nodes)(value.record, self.rows)
            return await self.obj(t, nodes, value)

    async def obj(self, gtype: GraphQLObjectType, nodes: list[FieldNode], source: Any) -> dict[str, Any]:
        return await self._fill(self.shape(gtype, nodes), source)

    async def _fill(self, slots: _Shape, source: Any) -> dict[str, Any]:
        if slots.fast is not None:
            return slots.fast(source)
        out: dict[str, Any] = {}
        for slot in slots:
            if slot.typename is not None:
                out[slot.key] = slot.typename
                continue
            if slot.func is None:
                value = getattr(source, slot.attr)  # type: ignore[arg-type]
            else:
                kwargs = slot.kwargs if slot.info is None else {**slot.kwargs, slot.info: self.info}
                if slot.is_async:
                    value = await slot.func(source, **kwargs)
                else:
                    value = slot.func(source, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
            leaf = slot.leaf
            if leaf is not None:  # a non-null leaf, the common case, without the general walk
                if value is None:
                    raise Fallback
                out[slot.key] = _leaf(leaf, value)
            else:
                out[slot.key] = await self._complete(slot.steps, 0, slot.nodes, value)
        return out


_NON_NULL, _LIST, _LEAF, _OBJECT = range(4)
_STEPS: dict[Any, tuple[tuple[int, Any], ...]] = {}


@dataclass(slots=True)
class _Slot:
    """One response key of an object: __typename, an attribute, or a resolver with its arguments."""

    key: str
    typename: str | None
    attr: str | None
    func: Any
    kwargs: dict[str, Any]
    is_async: bool
    steps: tuple[tuple[int, Any], ...]
    nodes: list[FieldNode]
    info: str | None = None  # the resolver's parameter for the request's Info
    leaf: Any = None  # the leaf type when `steps` is a non-null leaf

    def __post_init__(self) -> None:
        steps = self.steps
        if len(steps) == 2 and steps[0][0] == _NON_NULL and steps[1][0] == _LEAF:
            self.leaf = steps[1][1]


class _Shape(list[_Slot]):
    """The slots of an object's selections; `fast`: the same as one plain function, when every
    slot is `__typename` or an attribute holding a non-null leaf (no resolver, nothing to await)."""

    fast: Callable[[Any], dict[str, Any]] | None = None


def _compiled(
    slots: list[_Slot], shape_of: Callable[[GraphQLObjectType, list[FieldNode]], _Shape]
) -> Callable[[Any], dict[str, Any]] | None:
    """`_fill` unrolled for these slots, when each is `__typename` or an attribute holding a leaf,
    an object or a list of objects whose own shapes are plain too: the same values and checks as
    `_fill` and `_complete`, in their order, with nothing to await."""
    env: dict[str, Any] = {"_leaf": _leaf, "Fallback": Fallback}
    lines = ["def fill(source):"]
    for n, slot in enumerate(slots):
        env[f"K{n}"] = slot.key
        if slot.typename is not None:
            env[f"v{n}"] = slot.typename
            continue
        attr = slot.attr
        if slot.func is not None or attr is None or not attr.isidentifier() or keyword.iskeyword(attr):
            return None
        steps = slot.steps
        required = steps[0][0] == _NON_NULL
        inner = steps[1:] if required else steps
        convert = _converter(inner, slot.nodes, shape_of)
        if convert is None:
            return None
        lines.append(f"    v{n} = source.{attr}")
        if required:
            lines.append(f"    if v{n} is None: raise Fallback")
        plain = PLAIN.get(inner[0][1]) if len(inner) == 1 and inner[0][0] == _LEAF else None
        env[f"C{n}"] = convert
        if plain is not None:
            env[f"P{n}"] = plain
            lines.append(f"    if v{n} is not None and type(v{n}) is not P{n}: v{n} = C{n}(v{n})")
        else:
            lines.append(f"    if v{n} is not None: v{n} = C{n}(v{n})")
    lines.append("    return {" + ", ".join(f"K{n}: v{n}" for n in range(len(slots))) + "}")
    exec("\n".join(lines), env)  # noqa: S102 - built from schema attribute names, checked above
    return env["fill"]  # type: ignore[no-any-return]


def _converter(
    steps: tuple[tuple[int, Any], ...],
    nodes: list[FieldNode],
    shape_of: Callable[[GraphQLObjectType, list[FieldNode]], _Shape],
) -> Callable[[Any], Any] | None:
    """A non-None value's completion for a leaf, an object or a list of objects ([T] or [T!])."""
    kind, t = steps[0]
    if kind == _LEAF and len(steps) == 1:
        return leaf_of(t)
    if kind == _OBJECT:
        return shape_of(t, nodes).fast
    if kind == _LIST and steps[-1][0] == _LEAF and len(steps) <= 3:  # [L] or [L!]
        leaf, required = leaf_of(steps[-1][1]), len(steps) == 3

        def leaves(value: Any) -> list[Any]:
            out: list[Any] = []
            for v in value:
                if v is not None:
                    out.append(leaf(v))
                elif required:
                    raise Fallback
                else:
                    out.append(None)
            return out

        return leaves
    if kind == _LIST and steps[-1][0] == _OBJECT and len(steps) <= 3:
        fast = shape_of(steps[-1][1], nodes).fast
        if fast is None:
            return None
        strict = len(steps) == 3

        def each(value: Any) -> list[Any]:
            out: list[Any] = []
            for v in value:
                if v is not None:
                    out.append(fast(v))
                elif strict:
                    raise Fallback
                else:
                    out.append(None)
            return out

        return each
    return None


@dataclass(slots=True)
class _Memo:
    """What requests of one plan with the same inner variables share."""

    fields: dict[tuple[int, ...], Fields] = field(default_factory=dict)
    shapes: dict[tuple[int, int], _Shape] = field(default_factory=dict)
    needs: dict[int, UserNeeds] = field(default_factory=dict)
    eligible: dict[int, bool] = field(default_factory=dict)  # User fields answered directly
    reads: dict[tuple[int, bool], tuple[Any, Any, Reads]] = field(default_factory=dict)
    orders_n: dict[int, int] = field(default_factory=dict)  # an `orders` selection's read, by its nodes
    direct: dict[int, tuple[Any, Any, Callable[[Any, Rows], Any]]] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class _Field:
    """What a schema field's answer takes, the same for every request (kept by the field's id)."""

    field: Any
    sfield: StrawberryField
    steps: tuple[tuple[int, Any], ...]
    attr: str | None
    func: Any
    info: str | None
    is_async: bool


_FIELDS: dict[int, _Field] = {}


def _field_of(field: Any, steps: tuple[tuple[int, Any], ...]) -> _Field:
    sfield = _strawberry(field.extensions)
    resolver = sfield.base_resolver
    if resolver is None:
        return _Field(field, sfield, steps, sfield.python_name, None, None, False)
    if sfield.permission_classes or sfield.extensions:
        raise Fallback
    func: Any = resolver.wrapped_func
    info = None if resolver.info_parameter is None else resolver.info_parameter.name
    return _Field(field, sfield, steps, None, func, info, inspect.iscoroutinefunction(func))


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
