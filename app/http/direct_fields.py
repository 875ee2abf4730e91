"""The mutation lane's direct fields: a cleared mutation whose one root field is `setConsent`
(the channels' common write), selecting nothing but `id` and `__typename` of the user it answers,
calls the field's own permission classes and resolver without graphql-core's executor and
strawberry's argument conversion (a third of a consent write's server CPU, bench/RESULTS.md).

What stays as the executor does it: the variables and the field's argument are coerced by
graphql-core's own functions (`get_variable_values`, `get_argument_values`); the input object is
built as strawberry builds a flat input (its fields' Python names, values as coerced: enums are
members already, an ID a string); the answer's `id` is the User type's own resolver, serialized
by the ID scalar. An error the permission class or the resolver raises is located at the field,
with a null `data` (the field is non-null), as the executor locates it. When the variables or the
argument do not coerce, nothing has run: the lane executes the document instead, which answers the
same errors the executor always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import isawaitable, iscoroutinefunction
from types import SimpleNamespace
from typing import Any

from graphql import ExecutionResult as CoreResult
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    located_error,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.permission import PermissionExtension
from strawberry.types.base import StrawberryContainer, StrawberryOptional

from app.context import RequestContext

# Root mutation fields whose resolvers take the input object and read nothing of `info` but its
# context (graphql_schema/entitlements_mutations.py): only these are called directly.
DIRECT_FIELDS = frozenset({"setConsent"})
_SELECTABLE = frozenset({"id", "__typename"})
_STRAWBERRY = "strawberry-definition"


@dataclass(frozen=True, slots=True)
class DirectField:
    """One cleared document's root field, ready to be called without the executor."""

    operation: OperationDefinitionNode
    node: FieldNode
    key: str  # the response key: the alias, else the field's name
    field: Any  # graphql-core's GraphQLField
    resolver: Any  # the resolver's own function (source, info, **arguments)
    permissions: tuple[type, ...]
    names: dict[str, str]  # the field's arguments, GraphQL -> Python names
    inputs: dict[str, tuple[Any, dict[str, str]]]  # argument -> (input class, GraphQL -> Python names)
    selected: tuple[tuple[str, str], ...]  # (response key, field name) of the user's fields
    typename: str
    id_of: Any  # the User type's own `id` resolver
    serialize_id: Any

    async def run(
        self, schema: GraphQLSchema, variables: dict[str, Any] | None, ctx: RequestContext
    ) -> CoreResult | None:
        """The field's result as the executor would give it, or None: its variables or argument do
        not coerce, nothing ran, and the executor is to answer."""
        coerced = get_variable_values(schema, self.operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            return None
        try:
            raw = get_argument_values(self.field, self.node, coerced)
        except GraphQLError:
            return None
        arguments = {self.names[name]: _built(value, self.inputs.get(name)) for name, value in raw.items()}
        info = SimpleNamespace(context=ctx)  # what the direct fields' resolvers and permissions read
        try:
            for permission in self.permissions:
                allowed = permission().has_permission(None, info, **arguments)
                if not (await allowed if isawaitable(allowed) else allowed):
                    return None  # the executor says why, as the permission extension does
            user = await self.resolver(None, info, **arguments)
            if user is None:
                raise GraphQLError(
                    f"Cannot return null for non-nullable field Mutation.{self.node.name.value}."
                )
        except Exception as exc:  # noqa: BLE001 - located at the field, as the executor locates it
            return CoreResult(data=None, errors=[located_error(exc, [self.node], [self.key])])
        answer = {
            key: self.typename if name == "__typename" else self.serialize_id(self.id_of(user))
            for key, name in self.selected
        }
        return CoreResult(data={self.key: answer})


def _built(value: Any, spec: tuple[Any, dict[str, str]] | None) -> Any:
    """A coerced input object as strawberry converts a flat one: its class, by Python names."""
    if spec is None or not isinstance(value, dict):
        return value
    cls, names = spec
    return cls(**{names[name]: item for name, item in value.items()})


def direct_field(
    schema: GraphQLSchema, name_converter: Any, operation: OperationDefinitionNode
) -> DirectField | None:
    """The operation's one root field, if it is a direct field selecting only `id` and `__typename`."""
    selections = operation.selection_set.selections
    if operation.directives or len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    node = selections[0]
    if node.name.value not in DIRECT_FIELDS or node.directives or node.selection_set is None:
        return None
    selected = []
    for sub in node.selection_set.selections:
        if (
            not isinstance(sub, FieldNode)
            or sub.name.value not in _SELECTABLE
            or sub.directives
            or sub.arguments
            or sub.selection_set is not None
        ):
            return None
        selected.append(((sub.alias or sub.name).value, sub.name.value))
    mutation = schema.mutation_type
    field = mutation.fields.get(node.name.value) if mutation is not None else None
    definition = field.extensions.get(_STRAWBERRY) if field is not None else None
    if (
        field is None
        or definition is None
        or definition.base_resolver is None
        or not iscoroutinefunction(definition.base_resolver.wrapped_func)
        or not all(isinstance(e, PermissionExtension) for e in definition.extensions)
    ):
        return None  # only the permission classes wrap the resolver: nothing else would be skipped
    user_type = get_named_type(field.type)
    id_field = user_type.fields.get("id")
    id_definition = id_field.extensions.get(_STRAWBERRY) if id_field is not None else None
    if id_definition is None or id_definition.base_resolver is None or id_definition.permission_classes:
        return None
    names, inputs = {}, {}
    for argument in definition.arguments:
        flat, spec = _flat_input(argument.type, name_converter)
        if not flat:
            return None
        name = name_converter.get_graphql_name(argument)
        names[name] = argument.python_name
        if spec is not None:
            inputs[name] = spec
    return DirectField(
        operation=operation,
        node=node,
        key=(node.alias or node.name).value,
        field=field,
        resolver=definition.base_resolver.wrapped_func,
        permissions=tuple(definition.permission_classes),
        names=names,
        inputs=inputs,
        selected=tuple(selected),
        typename=user_type.name,
        id_of=id_definition.base_resolver.wrapped_func,
        serialize_id=get_named_type(id_field.type).serialize,
    )


def _flat_input(annotation: Any, name_converter: Any) -> tuple[bool, tuple[Any, dict[str, str]] | None]:
    """Whether an argument's type is a scalar, an enum or a flat input (its fields all scalars or
    enums), and for a flat input its class and its fields' GraphQL -> Python names."""
    definition = getattr(annotation, "__strawberry_definition__", None)
    if definition is None:
        return not isinstance(annotation, StrawberryContainer), None
    if not definition.is_input:
        return False, None
    names = {}
    for field in definition.fields:
        inner = field.type.of_type if isinstance(field.type, StrawberryOptional) else field.type
        if isinstance(inner, StrawberryContainer) or getattr(inner, "__strawberry_definition__", None):
            return False, None
        names[name_converter.get_graphql_name(field)] = field.python_name
    return True, (annotation, names)
