"""A compiled plan's variables (graphql_schema/compiled/variables.py) come out as graphql-core's
`get_variable_values` makes them, values and errors, whatever the request sends."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse
from graphql.execution.values import VariableValues, get_variable_values

from graphql_schema.compiled.variables import coerce, plain_signatures
from graphql_schema.schema import schema

CORE = schema._schema
PLAIN = "query ($id: ID!, $n: Int, $on: Boolean, $s: String!) { __typename }"
VALUES: list[Any] = [None, "7", "", 7, -(2**31), 2**31, 1.0, True, False, [], {}, "x" * 50]


def _definitions(query: str) -> Any:
    operation = parse(query).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return operation.variable_definitions


def _plain(values: VariableValues) -> Any:
    """Its sources and values, in order (a signature's type is a wrapper made anew each time)."""
    sources = [
        (k, s.signature.name, str(s.signature.type), s.signature.default, s.value)
        for k, s in values.sources.items()
    ]
    return sources, list(values.coerced.items())


def _same(found: Any, expected: Any) -> None:
    if isinstance(expected, VariableValues):
        assert isinstance(found, VariableValues)
        assert _plain(found) == _plain(expected)
    else:
        assert [e.formatted for e in found] == [e.formatted for e in expected]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("name", ["id", "n", "on", "s"])
def test_each_value_of_each_variable_as_graphql_core_coerces_it(name: str, value: Any) -> None:
    definitions = _definitions(PLAIN)
    plain = plain_signatures(CORE, definitions)
    assert plain is not None
    given = {"id": "1", "n": 3, "on": True, "s": "a", "extra": object(), name: value}
    _same(coerce(CORE, definitions, plain, given), get_variable_values(CORE, definitions, given))
    del given[name]  # not given at all
    _same(coerce(CORE, definitions, plain, given), get_variable_values(CORE, definitions, given))


def test_no_variables_given() -> None:
    definitions = _definitions(PLAIN)
    plain = plain_signatures(CORE, definitions)
    nothing: list[dict[str, Any] | None] = [None, {}]
    for given in nothing:
        _same(coerce(CORE, definitions, plain, given), get_variable_values(CORE, definitions, given or {}))


@pytest.mark.parametrize(
    "query",
    [
        "query ($n: Int = 3) { __typename }",  # a default
        "query ($ids: [ID!]) { __typename }",  # a list
        "query ($f: Float) { __typename }",  # a scalar whose coercion changes values
        "query ($s: OrderStatus) { __typename }",  # an enum
    ],
)
def test_other_variables_are_left_to_graphql_core(query: str) -> None:
    assert plain_signatures(CORE, _definitions(query)) is None
