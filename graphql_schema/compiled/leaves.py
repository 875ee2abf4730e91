"""Leaf values as graphql-core would serialize them, and the signal that stops a compiled run.

Shared by the compiled executor (execute.py) and the direct answers (direct.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)


class Fallback(Exception):
    """The compiled run stops; graphql-core runs the operation instead."""


# Built-in scalars whose serialization hands back a value of this exact type unchanged (Int within
# 32 bits is checked by serialize, so it is not here).
PLAIN: dict[Any, type] = {GraphQLString: str, GraphQLBoolean: bool, GraphQLID: str}


def leaf_of(gtype: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """`leaf` for one type, its common case first (an Int in 32 bits, an enum member seen before)."""
    if gtype is GraphQLInt:

        def integer(value: Any) -> Any:
            if type(value) is int and _INT_MIN <= value <= _INT_MAX:
                return value
            return leaf(gtype, value)

        return integer
    if isinstance(gtype, GraphQLEnumType):
        # By the member's id: an Enum's hash is a Python call, and members live as long as their
        # class, so no other object can take the id of one that is kept here.
        names: dict[int, Any] = {}

        def member(value: Any) -> Any:
            name = names.get(id(value))
            if name is None:
                name = leaf(gtype, value)
                if isinstance(value, Enum):
                    names[id(value)] = name
            return name

        member.names = names  # type: ignore[attr-defined]  # for generated code (direct.py)
        return member
    return lambda value: leaf(gtype, value)


def leaf(gtype: GraphQLScalarType | GraphQLEnumType, value: Any) -> Any:
    """graphql-core's leaf completion (`coerce_output_value`); a value it cannot coerce stops the
    compiled run. The built-in scalars' and the enums' answers are taken without the call when
    they are known to be the value itself (or, for enums, the same name as before)."""
    plain = PLAIN.get(gtype)
    if plain is not None and type(value) is plain:
        return value
    if gtype is GraphQLInt and type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    if gtype is GraphQLFloat and type(value) is float and math.isfinite(value):
        return value
    if isinstance(gtype, GraphQLEnumType) and isinstance(value, Enum):
        key = (gtype, value)
        name = _ENUM_NAMES.get(key)
        if name is None:
            name = _ENUM_NAMES[key] = _coerced(gtype, value)
        return name
    return _coerced(gtype, value)


def _coerced(gtype: GraphQLScalarType | GraphQLEnumType, value: Any) -> Any:
    out = gtype.coerce_output_value(value)
    if out is None or out is Undefined:
        raise Fallback
    return out


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_ENUM_NAMES: dict[tuple[Any, Enum], Any] = {}
