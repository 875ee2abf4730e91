"""A User's answer built straight from a compiled read's rows (loaders/compiled.py `Rows`).

For the fields below, the values are the ones the schema's types would hold (the same domain
rules: masking, the identity's channel, the order's status name, the consent settings in force),
serialized by the schema's own leaves; what is skipped is the machinery around them: priming
loaders, the resolvers' loads, strawberry objects and their field functions. A caller who may
read PII (every unmasked read is audited) and any other field take the executor's general path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.schema.types.base_scalars import isoformat
from strawberry.types.arguments import convert_arguments

from app.channels import identity_channel
from app.domain import IdentityKind, IdentityRecord, UserRecord
from app.phones import mask_phone
from app.services import consents as consent_rules
from graphql_schema.compiled.leaves import PLAIN, Fallback, leaf_of
from graphql_schema.compiled.plan import Fields
from graphql_schema.enums import OrderStatus
from loaders.compiled import Rows

# The User fields answered here; `consents` only as it is now (without `at`).
FIELDS = frozenset(
    {"__typename", "id", "createdAt", "phone", "identities", "orders", "cart", "consents", "allows"}
)

# Roots whose users were answered here, in this process (read by tests and bench/).
STATS: Counter[str] = Counter()
Build = Callable[..., Any]
FieldsOf = Callable[[list[FieldNode]], Fields]
# A field's answer: an expression over the source (`s`; for a User, its record `u`, id `uid` and
# the rows `r`), or a builder of its own from the field's nodes (then applied to the expression).
Spec = tuple[str, Callable[[list[FieldNode]], Build] | None]


def eligible(user_type: GraphQLObjectType, fields: Fields, variables: VariableValues) -> bool:
    """Whether every selected User field is one answered here."""
    for nodes in fields.values():
        name = nodes[0].name.value
        if name not in FIELDS:
            return False
        if name == "consents" and get_argument_values(user_type.fields[name], nodes[0], variables).get("at"):
            return False
    return True


def order_index(fields: Fields) -> dict[int, int]:
    """Which of `Reads.orders` each `orders` selection reads (the order `user_needs` lists them in)."""
    found: dict[int, int] = {}
    for nodes in fields.values():
        if nodes[0].name.value == "orders":
            found[id(nodes)] = len(found)
    return found


class Direct:
    """Builders of one plan's selections: a function generated per object selection, like the
    executor's shapes, with each field's value inline and its leaf checked as graphql-core would."""

    def __init__(self, strawberry_schema: Any, fields_of: FieldsOf, variables: VariableValues) -> None:
        self.strawberry = strawberry_schema
        self.schema = strawberry_schema._schema
        self.fields_of = fields_of
        self.variables = variables

    def type(self, name: str) -> GraphQLObjectType:
        found = self.schema.get_type(name)
        assert isinstance(found, GraphQLObjectType)
        return found

    def user(
        self, nodes: list[FieldNode], index: dict[int, int], ctx: Any
    ) -> Callable[[UserRecord, Rows], Any]:
        """The User object of these selections, from its record and the read's rows."""
        user_type = self.type("User")
        env: dict[str, Any] = {
            "PHONE": _phone,
            "SETTINGS_OF": consent_rules.settings_of,
            "ALLOWS": consent_rules.allows,
            "MASK": mask_phone,
            "PHONE_KIND": IdentityKind.PHONE,
            "IDENTITY_CHANNEL": identity_channel,
            "SETTINGS": ctx.settings,
        }
        specs: dict[str, Spec] = {}
        for sub in self.fields_of(nodes).values():
            name = sub[0].name.value
            if name == "orders":
                n = index[id(sub)]
                specs[f"orders#{id(sub)}"] = (
                    f"r.orders[{n}][uid]",
                    lambda x: self._orders(x, ctx.dictionary),
                )
            elif name == "allows":
                field = user_type.fields[name]
                args = convert_arguments(
                    get_argument_values(field, sub[0], self.variables),
                    field.extensions[_DEFINITION].arguments,
                    scalar_registry=self.strawberry.schema_converter.scalar_registry,
                    config=self.strawberry.config,
                )
                env[f"A{id(sub)}"] = (args["purpose"], args["channel"])
                specs[f"allows#{id(sub)}"] = (f"ALLOWS(r.consents[uid], *A{id(sub)})", None)
        identity = _IDENTITY
        cart: dict[str, Spec] = {"items": ("s", lambda x: self._list("CartItem", x, _CART_ITEM, env))}
        specs.update(
            {
                "id": ("str(uid)", None),
                "createdAt": ("u.created_at", None),
                "phone": ("PHONE(r.identities[uid])", None),
                "identities": ("r.identities[uid]", lambda x: self._list("Identity", x, identity, env)),
                "cart": ("r.cart[uid]", lambda x: self._object("Cart", x, cart, env)),
                "consents": (
                    "SETTINGS_OF(r.consents[uid])",
                    lambda x: self._list("Consent", x, _CONSENT, env),
                ),
            }
        )
        return self._object("User", nodes, specs, env, args="u, r", pre="    uid = u.id\n    T = r.placed")

    def _orders(self, nodes: list[FieldNode], dictionary: Any) -> Build:
        """An OrderConnection from a page of order rows (as `OrderConnection.of`)."""
        # `OrderStatus[name]` is a Python call of the enum's metaclass; its members by name are a dict.
        env: dict[str, Any] = {"ST": dict(OrderStatus.__members__), "STN": dictionary.status_names}
        order = dict(_ORDER)
        order["items"] = ("s.items", lambda x: self._list("OrderItem", x, _ORDER_ITEM, env))

        def orders(x: list[FieldNode]) -> Build:
            # `Order.of` names every order's status, selected or not.
            return self._list("Order", x, order, env, pre="    ST[STN[s.status_code]]", args="s, T")

        conn: dict[str, Spec] = {
            "nodes": ("s.nodes", orders),
            "pageInfo": ("s", lambda x: self._object("PageInfo", x, _PAGE_INFO, env)),
            "totalCount": ("s.total_count", None),
        }
        return self._object("OrderConnection", nodes, conn, env, args="s, T")

    def _list(
        self,
        type_name: str,
        nodes: list[FieldNode],
        specs: dict[str, Spec],
        env: dict[str, Any],
        pre: str = "",
        args: str = "s",
    ) -> Build:
        item = self._object(type_name, nodes, specs, env, pre=pre, args=args)
        each = _Each(lambda values: [item(v) for v in values])
        each.item = item
        return each

    def _object(
        self,
        type_name: str,
        nodes: list[FieldNode],
        specs: dict[str, Spec],
        env: dict[str, Any],
        *,
        args: str = "s",
        pre: str = "",
    ) -> Build:
        """One function for these selections on `type_name`: each field's value, a null where the
        schema forbids one stopping the run, leaves as graphql-core serializes them."""
        gtype = self.type(type_name)
        env = {**env, "Fallback": Fallback, "datetime": datetime}
        lines = [f"def build({args}):"] + ([pre] if pre else [])
        keys = []
        for n, (key, sub) in enumerate(self.fields_of(nodes).items()):
            name = sub[0].name.value
            env[f"K{n}"] = key
            keys.append(f"K{n}: v{n}")
            if name == "__typename":
                lines.append(f"    v{n} = {type_name!r}")
                continue
            field = gtype.fields[name]
            spec = specs.get(f"{name}#{id(sub)}") or specs.get(name)
            if spec is None or (field.args and name not in ("orders", "allows", "consents")):
                raise Fallback
            expr, make = spec
            lines.append(f"    v{n} = {expr}")
            required = isinstance(field.type, GraphQLNonNull)
            if make is not None:
                made = env[f"B{n}"] = make(sub)
                texts = ", T" if _takes_texts(made) else ""  # an order page's times (see below)
                convert = [f"v{n} = B{n}(v{n}{texts})"]
                if isinstance(made, _Each):  # its items built in this function's comprehension
                    env[f"I{n}"] = made.item
                    convert = [f"v{n} = [I{n}(x{texts}) for x in v{n}]"]
            else:
                convert = self._convert(field.type, f"v{n}", n, env)
                if type_name == "Order" and name == "placedAt" and args == "s, T" and _isoformat(field.type):
                    # The statement's own text of the time when it is the serializer's (`T`,
                    # Rows.placed): formatting an aware time costs more than reading it did.
                    lines[-1] = f"    v{n} = T.get(id(s))"
                    lines += [f"    if v{n} is None:", f"        v{n} = {expr}"]
                    if required:
                        lines.append(f"        if v{n} is None: raise Fallback")
                        lines += [f"        {c}" for c in convert]
                    else:
                        lines.append(f"        if v{n} is not None:")
                        lines += [f"            {c}" for c in convert]
                    continue
            if required:
                lines.append(f"    if v{n} is None: raise Fallback")
                lines += [f"    {c}" for c in convert]
            elif convert:
                lines.append(f"    if v{n} is not None:")
                lines += [f"        {c}" for c in convert]
        lines.append("    return {" + ", ".join(keys) + "}")
        exec("\n".join(lines), env)  # noqa: S102 - names from the schema, values from the specs above
        build = env["build"]
        build.texts = args.endswith(", T")  # called with the times' texts
        return build  # type: ignore[no-any-return]

    def _convert(self, gtype: GraphQLOutputType, v: str, n: int, env: dict[str, Any]) -> list[str]:
        """Statements that turn a non-null value of a leaf type into its answer (`leaf`'s checks)."""
        inner = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
        if not isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
            raise Fallback
        env[f"C{n}"] = leaf_of(inner)
        plain = PLAIN.get(inner)
        if plain is not None:
            env[f"P{n}"] = plain
            return [f"if type({v}) is not P{n}: {v} = C{n}({v})"]
        if inner is GraphQLInt:
            return [f"if type({v}) is not int or not -2147483648 <= {v} <= 2147483647: {v} = C{n}({v})"]
        names = getattr(env[f"C{n}"], "names", None)
        if names is not None:  # an enum: its members' names by id, as `leaf_of` keeps them
            env[f"N{n}"] = names
            return [f"{v} = N{n}.get(id({v})) or C{n}({v})"]
        if inner.name == "DateTime" and inner.serialize is isoformat:
            return [f"{v} = {v}.isoformat() if type({v}) is datetime else C{n}({v})"]
        return [f"{v} = C{n}({v})"]


def _isoformat(gtype: GraphQLOutputType) -> bool:
    """Whether a DateTime field's answer is its value's `isoformat()` (strawberry's serializer)."""
    inner = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
    return isinstance(inner, GraphQLScalarType) and inner.name == "DateTime" and inner.serialize is isoformat


def _takes_texts(made: Any) -> bool:
    return bool(getattr(made.item if isinstance(made, _Each) else made, "texts", False))


class _Each:
    """A list's builder, with the builder of its items (`item`) for a generated caller to use."""

    __slots__ = ("build", "item")

    def __init__(self, build: Build) -> None:
        self.build = build
        self.item: Build | None = None

    def __call__(self, values: Any) -> Any:
        return self.build(values)


def _phone(held: list[IdentityRecord]) -> str | None:
    for i in held:
        if i.kind is IdentityKind.PHONE:
            return mask_phone(i.value)
    return None


# As `resolvers.identity.identities` for a caller who may not read PII.
_IDENTITY: dict[str, Spec] = {
    "kind": ("s.kind", None),
    "value": ("(MASK(s.value) if s.kind is PHONE_KIND else s.value)", None),
    "namespace": ("(s.namespace or None)", None),
    "channel": ("IDENTITY_CHANNEL(s.kind, s.namespace, SETTINGS)", None),
    "verified": ("s.verified", None),
    "linkedAt": ("s.linked_at", None),
    "linkedBy": ("s.linked_by", None),
}


_ORDER: dict[str, Spec] = {
    "id": ('f"{s.channel._value_}:{s.id}"', None),  # `.value`, without the enum's property call
    "channel": ("s.channel", None),
    "sourceId": ("s.order_id", None),
    "status": ("ST[STN[s.status_code]]", None),
    "statusCode": ("s.status_code", None),
    "totalCents": ("s.total_cents", None),
    "currency": ("s.currency", None),
    "placedAt": ("s.placed_at", None),
    "updatedAt": ("s.updated_at", None),
}
_ORDER_ITEM: dict[str, Spec] = {
    "sku": ('s["sku"]', None),
    "name": ('s.get("name")', None),
    "quantity": ('s["quantity"]', None),
    "unitPriceCents": ('s["unit_price_cents"]', None),
}
_PAGE_INFO: dict[str, Spec] = {"hasNextPage": ("s.has_next_page", None), "endCursor": ("s.end_cursor", None)}
_CART_ITEM: dict[str, Spec] = {
    "sku": ("s.sku", None),
    "quantity": ("s.quantity", None),
    "channel": ("s.channel", None),
    "updatedAt": ("s.updated_at", None),
}
_CONSENT: dict[str, Spec] = {
    "purpose": ("s.purpose", None),
    "channel": ("s.channel", None),
    "granted": ("s.granted", None),
    "sourceChannel": ("s.source_channel", None),
    "policyVersion": ("s.policy_version", None),
    "updatedAt": ("s.effective_at", None),
}
_DEFINITION = GraphQLCoreConverter.DEFINITION_BACKREF
