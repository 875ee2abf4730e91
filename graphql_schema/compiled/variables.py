"""A compiled plan's variables, coerced as graphql-core's `get_variable_values` coerces them.

Most operations declare a few variables of the built-in scalars (`$id: ID!`, `$first: Int`) and
are sent values of exactly that type: their coercion hands each value back as it is. For such a
plan the variables' signatures are worked out once, and a request whose values are all of that
plain kind gets the very `VariableValues` graphql-core would build (the same sources and coerced
values, in the same order) without its walk. Anything else (a default, an input object, a list,
an ID sent as a number, a null where one is required, a missing variable) goes to graphql-core,
which coerces it or words the errors.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLString,
    Undefined,
    VariableDefinitionNode,
)
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource, get_variable_values

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# The values each built-in scalar's `parse_value` hands back unchanged.
_PLAIN: dict[Any, Callable[[Any], bool]] = {
    GraphQLID: lambda v: type(v) is str,
    GraphQLString: lambda v: type(v) is str,
    GraphQLBoolean: lambda v: type(v) is bool,
    GraphQLInt: lambda v: type(v) is int and _INT_MIN <= v <= _INT_MAX,
}
Plain = tuple[tuple[str, GraphQLVariableSignature, bool, Callable[[Any], bool]], ...]


def plain_signatures(schema: GraphQLSchema, definitions: Collection[VariableDefinitionNode]) -> Plain | None:
    """(name, signature, required, accepts) of each variable, when every one is a built-in scalar
    without a default; None otherwise."""
    out = []
    for node in definitions:
        signature = get_variable_signature(schema, node)
        if isinstance(signature, GraphQLError) or node.default_value is not None:
            return None
        gtype = signature.type
        required = isinstance(gtype, GraphQLNonNull)
        accepts = _PLAIN.get(gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype)
        if accepts is None:
            return None
        out.append((signature.name, signature, required, accepts))
    return tuple(out)


def coerce(
    schema: GraphQLSchema,
    definitions: Collection[VariableDefinitionNode],
    plain: Plain | None,
    given: dict[str, Any] | None,
) -> VariableValues | list[GraphQLError]:
    """`get_variable_values(schema, definitions, given or {})`, for plain values without its walk."""
    inputs = given or {}
    if plain is not None:
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for name, signature, required, accepts in plain:
            value = inputs.get(name, Undefined)
            if value is Undefined or value is None:
                if required:
                    break  # graphql-core words the error
                sources[name] = VariableValueSource(signature, value)
                if value is None:
                    coerced[name] = None
                continue
            if not accepts(value):
                break
            sources[name] = VariableValueSource(signature, value)
            coerced[name] = value
        else:
            return VariableValues(sources, coerced)
    return get_variable_values(schema, definitions, inputs)
