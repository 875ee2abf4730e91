"""Bounded operations: what an operation may ask for, checked before it runs.

Checked before validation, on the parsed document alone (so a flood of them costs no validation
work): directives per field and in total, how often one field is selected in one selection set
(500 copies of `__typename` would make validation quadratic), and the cost: each field costs 1 and
a `first` argument multiplies what is under it, with every `first` capped at the page size.
Depth, aliases and tokens are strawberry's own limiters (`graphql_schema/validation.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    Node,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    VariableNode,
    get_named_type,
)
from graphql.pyutils import Undefined

from app.settings import Settings
from resolvers.paging import page_size_error

LIMIT_EXCEEDED = "OPERATION_LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one operation (TROIKA_GRAPHQL_MAX_*)."""

    depth: int
    aliases: int
    tokens: int
    directives: int
    directives_per_field: int
    field_repeats: int
    cost: int
    page_size: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            depth=settings.graphql_max_depth,
            aliases=settings.graphql_max_aliases,
            tokens=settings.graphql_max_tokens,
            directives=settings.graphql_max_directives,
            directives_per_field=settings.graphql_max_directives_per_field,
            field_repeats=settings.graphql_max_field_repeats,
            cost=settings.graphql_max_cost,
            page_size=settings.graphql_max_page_size,
        )


def limit_error(
    limit: str, maximum: int, message: str, nodes: Node | list[Node] | None = None, **extra: object
) -> GraphQLError:
    """One clear error naming the limit, its maximum, and what the operation asked for."""
    return GraphQLError(
        message, nodes, extensions={"code": LIMIT_EXCEEDED, "limit": limit, "max": maximum, **extra}
    )


def _nodes(root: Node) -> Iterator[Node]:
    """Every node of the document, without recursion (a document may nest deeply)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for key in node.keys:
            if key == "loc":
                continue
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))


def directives_error(document: DocumentNode, limits: Limits) -> GraphQLError | None:
    """Directives are counted on every node, known or not: unknown ones cost validation errors too."""
    total = 0
    for node in _nodes(document):
        directives = getattr(node, "directives", None)
        if not directives:
            continue
        if len(directives) > limits.directives_per_field:
            return limit_error(
                "directivesPerField",
                limits.directives_per_field,
                f"{len(directives)} directives on one field; at most {limits.directives_per_field} "
                "are allowed",
                node,
            )
        total += len(directives)
    if total > limits.directives:
        return limit_error(
            "directives",
            limits.directives,
            f"{total} directives in the document; at most {limits.directives} are allowed",
        )
    return None


def _selection_sets(document: DocumentNode) -> Iterator[SelectionSetNode]:
    stack = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        selection_set = stack.pop()
        yield selection_set
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)


def field_repeats_error(document: DocumentNode, limits: Limits) -> GraphQLError | None:
    """A response key selected too often in one selection set (inline fragments merge into it)."""
    for selection_set in _selection_sets(document):
        counts: Counter[str] = Counter()
        first_of: dict[str, FieldNode] = {}
        pending = [selection_set]
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    counts[key] += 1
                    first_of.setdefault(key, selection)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
        for key, count in counts.items():
            if count > limits.field_repeats:
                return limit_error(
                    "fieldRepeats",
                    limits.field_repeats,
                    f"`{key}` is selected {count} times in one selection set; at most "
                    f"{limits.field_repeats} are allowed",
                    first_of[key],
                )
    return None


class _PageTooLarge(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


class _Cost:
    """Walks one operation; fragments are costed once each (a fragment bomb stays linear)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
        self.of_fragment: dict[str, int] = {}
        self.visiting: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
            if total > self.limits.cost:
                break  # already over: the rest cannot bring it back
        return total

    def fragment(self, name: str) -> int:
        if name in self.of_fragment:
            return self.of_fragment[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.visiting:
            return 0  # unknown or cyclic: validation refuses it
        self.visiting.add(name)
        cost = self.selections(
            definition.selection_set, self.schema.get_type(definition.type_condition.name.value)
        )
        self.visiting.discard(name)
        self.of_fragment[name] = cost
        return cost

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> int:
        definition = self._definition(parent, node.name.value)
        if not node.selection_set:
            return 1
        below = self.selections(node.selection_set, get_named_type(definition.type) if definition else None)
        return 1 + self._page(node, definition) * below

    def _definition(self, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is self.schema.query_type and name in ("__schema", "__type"):
            return SchemaMetaFieldDef if name == "__schema" else TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            found: GraphQLField | None = parent.fields.get(name)
            return found
        return None

    def _page(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """The page a `first` asks for (its default when absent or null; the cap when it has none)."""
        if definition is None or "first" not in definition.args:
            return 1
        default = definition.args["first"].default_value
        value: object = None if default is Undefined else default
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        if argument is not None:
            given: object = None
            if isinstance(argument.value, IntValueNode):
                given = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                given = self.variables.get(argument.value.name.value)
            if isinstance(given, int) and not isinstance(given, bool):
                value = given
        if not isinstance(value, int):
            return self.limits.page_size
        if not 0 <= value <= self.limits.page_size:
            raise _PageTooLarge(argument or node)
        return value


def cost_error(
    schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None, limits: Limits
) -> GraphQLError | None:
    """The most expensive operation of the document over the cost limit, or a `first` over the cap."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Cost(schema, fragments, variables or {}, limits)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = schema.get_root_type(definition.operation)
        try:
            cost = walk.selections(definition.selection_set, root)
        except _PageTooLarge as exc:
            error = page_size_error(limits.page_size)
            return GraphQLError(error.message, exc.node, original_error=error)
        if cost > limits.cost:
            return limit_error(
                "cost",
                limits.cost,
                f"the operation costs more than {limits.cost} (each field costs 1; `first` multiplies "
                "the fields under it)",
                definition,
                cost=cost,
            )
    return None
