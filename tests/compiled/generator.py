"""A seeded generator of user queries over the compiled subset (and a little beyond it)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.cursors import encode_cursor
from tests.compiled.conftest import World

IDENTITY = "identities { kind value namespace channel verified linkedAt linkedBy }"
EVENT = "id channel type occurredAt properties"
ORDER = (
    "id channel sourceId status statusCode totalCents currency "
    "items { sku name quantity unitPriceCents } placedAt updatedAt __typename"
)
LEAVES = [
    "id",
    "createdAt",
    "phone",
    "points",
    "__typename",
    "cart { items { sku quantity channel updatedAt } }",
    "membership { tier since expiresAt sourceChannel points }",
    "benefits { code name }",
    "consents { purpose channel granted sourceChannel policyVersion updatedAt }",
    "roles { role scope permissions grantedAt }",
    "interests { tag weight }",
]
PREFERENCE = "sku name views favorites cartAdds purchases score channels lastAt __typename"
TRAITS = (
    "traits { lifetimeValueCents paidOrders averageOrderCents firstOrderAt lastOrderAt "
    "ordersByChannel { channel count } lastSeenAt }"
)
JOURNEY = "journey { path channels { channel firstSeenAt lastSeenAt firstOrderAt } }"
CHANNELS = [None, "MINI_PROGRAM", "APP", "OFFICIAL_ACCOUNT"]
STATUSES = [None, "PAID", "PENDING_PAYMENT", "COMPLETED"]
ENUMS = frozenset({"OrderStatus", "Channel"})


@dataclass
class Op:
    query: str
    variables: dict[str, Any] = field(default_factory=dict)


# The User fields a compiled read answers straight from its rows (graphql_schema/compiled/direct.py).
DIRECT = frozenset(
    {"id", "createdAt", "phone", "__typename", "identities", "orders", "cart", "consents", "allows"}
)


class Generator:
    def __init__(self, seed: int, world: World, *, direct: bool = False) -> None:
        self.r = random.Random(seed)
        self.w = world
        self.direct = direct  # only fields of the direct answers
        self.vars: dict[str, tuple[str, Any]] = {}  # name -> (GraphQL type, value)
        self.used: set[str] = set()  # field names selected so far

    def var(self, gtype: str, value: Any) -> str:
        name = f"v{len(self.vars)}"
        self.vars[name] = (gtype, value)
        return f"${name}"

    def _sub(self, text: str) -> str:
        """A random non-empty subset of a selection's leaves (nested selections kept whole)."""
        if "{" in text or self.r.random() < 0.5:
            return text
        parts = text.split()
        return " ".join(self.r.sample(parts, self.r.randint(1, len(parts))))

    def _args(self, spec: dict[str, tuple[str, list[Any]]]) -> str:
        out = []
        for name, (gtype, choices) in spec.items():
            value = self.r.choice(choices)
            if value is None and self.r.random() < 0.7:
                continue
            literal = str(value) if gtype in ENUMS and value is not None else _lit(value)
            out.append(f"{name}: {self.var(gtype, value)}" if self.r.random() < 0.6 else f"{name}: {literal}")
        return f"({', '.join(out)})" if out else ""

    def user_field(self) -> str:
        while True:
            f = self._user_field()
            if not self.direct or f.split("(")[0].split(" ")[0] in DIRECT:
                return f

    def _user_field(self) -> str:
        r = self.r.random()
        cursor = encode_cursor(_when(), "MINI_PROGRAM", 2)
        if r < 0.18:
            args = self._args(
                {
                    "first": ("Int", [None, 1, 2, 50, 0]),
                    "status": ("OrderStatus", STATUSES),
                    "channel": ("Channel", CHANNELS),
                    "after": ("String", [None, None, cursor]),
                }
            )
            page = self.r.choice(["totalCount", "pageInfo { hasNextPage endCursor }", ""])
            return f"orders{args} {{ {page} nodes {{ {self._sub(ORDER)} }} }}"
        if r < 0.26:
            args = self._args(
                {
                    "first": ("Int", [None, 1, 3]),
                    "types": ("[String!]", [None, ["article_read"], ["page_view", "article_read"]]),
                    "channel": ("Channel", CHANNELS),
                }
            )
            return f"behavior{args} {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {EVENT} }} }}"
        if r < 0.34:
            purpose = self.r.choice(["PUSH", "MARKETING", "LOCATION"])
            channel = self.r.choice(["MINI_PROGRAM", "APP"])
            return f"allows(purpose: {self.var('Purpose!', purpose)}, channel: {channel})"
        if r < 0.4:
            perm = self.r.choice(["store.orders.manage", "customer.read", "nothing.at.all"])
            scope = self.r.choice([None, "store:12", "store:13"])
            scoped = "" if scope is None else f", scope: {_lit(scope)}"
            return f"hasPermission(permission: {self.var('String!', perm)}{scoped})"
        if r < 0.46:
            first = self._args({"first": ("Int", [None, 1, 5, 0, 101])})
            return self.r.choice(
                [f"preferences{first} {{ {self._sub(PREFERENCE)} }}", self._sub(TRAITS), self._sub(JOURNEY)]
            )
        if r < 0.5:
            return (
                self._sub(IDENTITY) if self.r.random() < 0.8 else IDENTITY.replace("identities", "identities")
            )
        return self._sub(self.r.choice(LEAVES))

    def selection(self) -> tuple[str, list[str]]:
        """User fields (aliased, fragmented, conditional at random) and the fragments they use."""
        fields: list[str] = []
        fragments: list[str] = []
        for n in range(self.r.randint(1, 6)):
            f = self.user_field()
            name = f.split("(")[0].split(" ")[0]
            if ("(" in f and name in self.used) or self.r.random() < 0.3:
                f = f"a{len(self.used)}_{n}: {f}"  # same-named fields with other arguments need aliases
            self.used.add(name)
            directive = ""
            if self.r.random() < 0.15:
                directive = f" @include(if: {self.var('Boolean!', self.r.random() < 0.5)})"
            elif self.r.random() < 0.1:
                directive = f" @skip(if: {self.var('Boolean!', self.r.random() < 0.5)})"
            head, brace, rest = f.partition(" {")
            f = f"{head}{directive}{brace}{rest}"  # directives come before a selection set
            roll = self.r.random()
            if roll < 0.15:
                f = f"... on User {{ {f} }}"
            elif roll < 0.25:
                name = f"F{len(fragments)}"
                fragments.append(f"fragment {name} on User {{ {f} }}")
                f = f"...{name}"
            fields.append(f)
        if self.r.random() < 0.04 and not self.direct:
            fields.append("identityHistory { action }")  # outside the compiled subset
        return " ".join(fields), fragments

    def root(self) -> str:
        w = self.w
        sel, frags = self.selection()
        r = self.r.random()
        if r < 0.35:
            uid = self.r.choice([w.full, w.survivor, w.absorbed, w.bare, w.erased, "999999", "abc"])
            root = f"user(id: {self.var('ID', uid)}) {{ {sel} }}"
        elif r < 0.6:
            ident = w.identities[self.r.choice(list(w.identities))]
            root = f"user(identity: {self.var('IdentityInput', ident)}) {{ {sel} }}"
        elif r < 0.8:
            root = f"me {{ {sel} }}"
        else:
            first = self.r.choice([1, 2, 5, 0, 1000])
            after = self.r.choice([None, None, w.full, "x"])
            page = self.r.choice(["totalCount pageInfo { hasNextPage endCursor }", "totalCount", ""])
            cursor = "" if after is None else f", after: {_lit(after)}"
            root = f"users(first: {first}{cursor}) {{ {page} nodes {{ {sel} }} }}"
        if self.r.random() < 0.2:
            root = f"other: {root}"
        return root + (" " + " ".join(frags) if frags else "")

    def op(self) -> Op:
        self.vars = {}
        self.used = set()
        body = self.root()
        fragments = ""
        if " fragment " in body:
            body, _, rest = body.partition(" fragment ")
            fragments = " fragment " + rest
        extra = " __typename" if self.r.random() < 0.1 else ""
        decl = ", ".join(f"${k}: {t}" for k, (t, _) in self.vars.items())
        head = f"query Q({decl})" if decl else "query Q"
        return Op(f"{head} {{ {body}{extra} }}{fragments}", {k: v for k, (_, v) in self.vars.items()})


def _lit(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    return str(value)


def _when() -> datetime:
    return datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
