"""Plans for compiled reads: which operations the compiler knows, and what each one reads.

An operation is compiled when every field it could select (whatever its variables) is one whose
data the compiled read fetches up front (loaders/compiled.py). Which of them a request selects,
with which arguments, follows GraphQL's own rules: @skip/@include, fragments and aliases are
evaluated by graphql-core's functions over the request's coerced variables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_operation_ast,
    visit,
)
from graphql.execution.values import VariableValues, get_argument_values

from graphql_schema.compiled.variables import Plain, plain_signatures

# The fields whose data one compiled read fetches, per type. Anything else runs through the
# resolvers as it always does.
KNOWN: dict[str, frozenset[str]] = {
    "Query": frozenset({"user", "me", "users"}),
    "UserConnection": frozenset({"nodes", "pageInfo", "totalCount"}),
    "PageInfo": frozenset({"hasNextPage", "endCursor"}),
    "User": frozenset(
        {
            "id",
            "createdAt",
            "phone",
            "identities",
            "orders",
            "cart",
            "membership",
            "benefits",
            "points",
            "consents",
            "allows",
            "roles",
            "hasPermission",
            "behavior",
            "interests",
            "preferences",
            "traits",
            "journey",
        }
    ),  # fmt: skip
    "Identity": frozenset({"kind", "value", "namespace", "channel", "verified", "linkedAt", "linkedBy"}),
    "OrderConnection": frozenset({"nodes", "pageInfo", "totalCount"}),
    "Order": frozenset(
        {
            "id",
            "channel",
            "sourceId",
            "status",
            "statusCode",
            "totalCents",
            "currency",
            "items",
            "placedAt",
            "updatedAt",
        }
    ),  # fmt: skip
    "OrderItem": frozenset({"sku", "name", "quantity", "unitPriceCents"}),
    "Cart": frozenset({"items"}),
    "CartItem": frozenset({"sku", "quantity", "channel", "updatedAt"}),
    "Membership": frozenset({"tier", "since", "expiresAt", "sourceChannel", "points"}),
    "Benefit": frozenset({"code", "name"}),
    "Consent": frozenset({"purpose", "channel", "granted", "sourceChannel", "policyVersion", "updatedAt"}),
    "RoleGrant": frozenset({"role", "scope", "permissions", "grantedAt"}),
    "BehaviorConnection": frozenset({"nodes", "pageInfo"}),
    "BehaviorEvent": frozenset({"id", "channel", "type", "occurredAt", "properties"}),
    "Interest": frozenset({"tag", "weight"}),
    # The portrait: read by its own loaders (a constant number of statements per list of users).
    "ProductPreference": frozenset(
        {"sku", "name", "views", "favorites", "cartAdds", "purchases", "score", "channels", "lastAt"}
    ),
    "UserTraits": frozenset(
        {
            "lifetimeValueCents",
            "paidOrders",
            "averageOrderCents",
            "firstOrderAt",
            "lastOrderAt",
            "ordersByChannel",
            "lastSeenAt",
        }
    ),  # fmt: skip
    "ChannelCount": frozenset({"channel", "count"}),
    "Journey": frozenset({"path", "channels"}),
    "ChannelPresence": frozenset({"channel", "firstSeenAt", "lastSeenAt", "firstOrderAt"}),
}

Fields = dict[str, list[FieldNode]]  # response key -> the nodes merged under it


@dataclass(frozen=True)
class Plan:
    """A compilable operation of a document (kept per document text and operation name)."""

    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    # The variables below the root fields (directives, arguments of nested fields): what a
    # request's selections depend on besides the document, so what its memo is kept by.
    inner: tuple[str, ...] = ()
    # The variables' signatures when all are built-in scalars without defaults (variables.py).
    plain: Plain | None = None
    memos: LRUCache[tuple[Any, ...], Any] = field(
        default_factory=lambda: LRUCache(maxsize=64), compare=False, repr=False
    )

    def memo_key(self, variables: VariableValues) -> tuple[Any, ...] | None:
        """The request's memo key, or None when a value is not hashable (no memo then)."""
        given = variables.coerced
        key = tuple(given.get(n, _ABSENT) for n in self.inner)
        try:
            hash(key)
        except TypeError:
            return None
        return key


@dataclass
class UserNeeds:
    """What the selected User fields read, with the arguments of each paged relation."""

    hub: set[str] = field(default_factory=set)  # identities, consents, memberships, points, roles
    cart: bool = False
    interests: bool = False
    portrait: set[str] = field(default_factory=set)  # preferences, traits, journey
    orders: list[dict[str, Any]] = field(default_factory=list)
    behavior: list[dict[str, Any]] = field(default_factory=list)


_ABSENT = object()  # a variable not given (its argument's default applies), unlike null
_plans: LRUCache[tuple[str, str | None], Plan | None] = LRUCache(maxsize=1024)
_PORTRAIT = frozenset({"preferences", "traits", "journey"})
_HUB_FIELDS = {
    "identities": "identities",
    "phone": "identities",
    "consents": "consents",
    "allows": "consents",
    "membership": "memberships",
    "benefits": "memberships",
    "points": "points",
    "roles": "roles",
    "hasPermission": "roles",
}


def plan_for(schema: GraphQLSchema, query: str, document: DocumentNode, name: str | None) -> Plan | None:
    """The plan of this operation, or None when it has a field the compiler does not know."""
    key = (query, name)
    if key in _plans:
        return _plans[key]
    operation = get_operation_ast(document, name)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    plan = None
    if (
        operation is not None
        and operation.operation is OperationType.QUERY
        and not any(f.variable_definitions for f in fragments.values())
        and _known(schema, schema.query_type, operation.selection_set, fragments, set())
    ):
        plain = plain_signatures(schema, operation.variable_definitions or ())
        plan = Plan(operation=operation, fragments=fragments, inner=_inner(operation, fragments), plain=plain)
    _plans[key] = plan
    return plan


def _inner(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    """Every variable the operation uses except in a root field's own arguments."""
    found: set[str] = set()

    def variables(node: Node) -> None:
        class Names(Visitor):
            def enter_variable(self, var: VariableNode, *_: Any) -> None:
                found.add(var.name.value)

        visit(node, Names())

    def root(selections: SelectionSetNode, seen: set[str]) -> None:
        for sel in selections.selections:
            for d in sel.directives or ():
                variables(d)
            if isinstance(sel, FieldNode):
                if sel.selection_set is not None:
                    variables(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                root(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                seen.add(sel.name.value)
                frag = fragments.get(sel.name.value)
                if frag is not None:
                    root(frag.selection_set, seen)

    at_root: set[str] = set()
    root(operation.selection_set, at_root)
    for name, frag in fragments.items():  # spread below the roots (or unused): all of it
        if name not in at_root:
            variables(frag.selection_set)
    return tuple(sorted(found))


def _known(
    schema: GraphQLSchema,
    parent: GraphQLObjectType | None,
    selections: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> bool:
    """Every field under `selections`, on every branch, is one the compiler knows."""
    if parent is None:
        return False
    known = KNOWN.get(parent.name, frozenset())
    for sel in selections.selections:
        if isinstance(sel, FieldNode):
            name = sel.name.value
            if name == "__typename":
                continue
            if name not in known or name not in parent.fields:
                return False
            if sel.selection_set is not None:
                child = get_named_type(parent.fields[name].type)
                if not isinstance(child, GraphQLObjectType):
                    return False
                if not _known(schema, child, sel.selection_set, fragments, seen):
                    return False
        elif isinstance(sel, InlineFragmentNode):
            if sel.type_condition is not None and sel.type_condition.name.value != parent.name:
                return False
            if not _known(schema, parent, sel.selection_set, fragments, seen):
                return False
        elif isinstance(sel, FragmentSpreadNode):
            frag = fragments.get(sel.name.value)
            if frag is None or frag.type_condition.name.value != parent.name:
                return False
            if sel.name.value not in seen:
                seen.add(sel.name.value)
                if not _known(schema, parent, frag.selection_set, fragments, seen):
                    return False
    return True


def _included(node: FieldNode | InlineFragmentNode | FragmentSpreadNode, variables: VariableValues) -> bool:
    if not node.directives:
        return True
    skip = next((d for d in node.directives if d.name.value == GraphQLSkipDirective.name), None)
    if skip is not None and get_argument_values(GraphQLSkipDirective, skip, variables)["if"]:
        return False
    include = next((d for d in node.directives if d.name.value == GraphQLIncludeDirective.name), None)
    return include is None or bool(get_argument_values(GraphQLIncludeDirective, include, variables)["if"])


def collect(
    plan: Plan,
    selection_sets: Iterable[SelectionSetNode],
    variables: VariableValues,
    out: Fields | None = None,
) -> Fields:
    """GraphQL's CollectFields for one object type (type conditions were checked by `_known`)."""
    fields: Fields = {} if out is None else out
    visited: set[str] = set()

    def walk(selections: SelectionSetNode) -> None:
        for sel in selections.selections:
            assert isinstance(sel, (FieldNode, InlineFragmentNode, FragmentSpreadNode))
            if not _included(sel, variables):
                continue
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                fields.setdefault(key, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set)
            elif sel.name.value not in visited:
                visited.add(sel.name.value)
                walk(plan.fragments[sel.name.value].selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return fields


def subfields(plan: Plan, nodes: list[FieldNode], variables: VariableValues) -> Fields:
    return collect(plan, (n.selection_set for n in nodes if n.selection_set is not None), variables)


def user_needs(
    plan: Plan, user_type: GraphQLObjectType, fields: Fields, variables: VariableValues, needs: UserNeeds
) -> UserNeeds:
    """Add what these User fields read to `needs` (the arguments as the field will receive them)."""
    for nodes in fields.values():
        name = nodes[0].name.value
        if name in _HUB_FIELDS:
            needs.hub.add(_HUB_FIELDS[name])
        elif name == "cart":
            needs.cart = True
        elif name == "interests":
            needs.interests = True
        elif name in _PORTRAIT:
            needs.portrait.add(name)
        elif name in ("orders", "behavior"):
            args = get_argument_values(user_type.fields[name], nodes[0], variables)
            (needs.orders if name == "orders" else needs.behavior).append(args)
        if name in ("membership",):
            # Membership.points reads the points ledger too.
            sub = subfields(plan, nodes, variables)
            if any(n[0].name.value == "points" for n in sub.values()):
                needs.hub.add("points")
    return needs
