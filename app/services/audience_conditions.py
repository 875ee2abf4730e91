"""Audience conditions: the saved JSON tree checked and read into typed nodes the SQL compiler walks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain import Channel, IdentityKind
from app.domain.entitlements import Purpose
from app.errors import InvalidInput

LOGIC = ("all", "any", "not")
LEAVES = (
    "orders",
    "behavior",
    "reservations",
    "identity",
    "membership",
    "interest",
    "cart",
    "consent",
    "traits",
    "preference",
    "journey",
)
FIELDS = LOGIC + LEAVES
# Each leaf's fields (required ones first in the tuple of required names); values checked below.
_LEAF_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "orders": (frozenset(), frozenset({"channel", "statuses", "sku", "withinDays", "minCount"})),
    "behavior": (frozenset({"types"}), frozenset({"channel", "tag", "withinDays", "minCount"})),
    "reservations": (frozenset(), frozenset({"channel", "statuses", "service", "withinDays", "minCount"})),
    "identity": (frozenset({"kind"}), frozenset({"channel"})),
    "membership": (frozenset({"tiers"}), frozenset()),
    "interest": (frozenset({"tag"}), frozenset({"minWeight"})),
    "cart": (frozenset(), frozenset({"sku", "olderThanDays"})),
    "consent": (frozenset({"purpose"}), frozenset({"channel"})),
    "traits": (frozenset(), frozenset({"minLifetimeValueCents", "minPaidOrders", "lastOrderWithinDays"})),
    "preference": (frozenset({"sku"}), frozenset({"minScore"})),
    "journey": (frozenset(), frozenset({"firstChannel", "pathStartsWith"})),
}
# Leaves whose fields are all optional but which need at least one of them.
_ONE_OF = frozenset({"traits", "journey"})
MAX_CENTS = 10**15
MAX_DAYS = 3650
MAX_TEXT = 200
MAX_LIST = 50


@dataclass(frozen=True, slots=True)
class Node:
    """One checked node: `kind` is one of FIELDS; `children` for all/any/not, `args` for a leaf."""

    kind: str
    path: str
    children: tuple[Node, ...] = ()
    args: dict[str, Any] | None = None

    def arg(self, name: str, default: Any = None) -> Any:
        value = (self.args or {}).get(name)
        return default if value is None else value


class _Walk:
    """Counts nodes while reading, so both bounds are checked in one pass."""

    def __init__(
        self, *, max_depth: int, max_nodes: int, order_statuses: set[str], booking: set[str]
    ) -> None:
        self.max_depth, self.max_nodes, self.nodes = max_depth, max_nodes, 0
        self.order_statuses, self.booking = order_statuses, booking

    def node(self, raw: object, path: str, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise InvalidInput(f"{path}: a condition may have at most {self.max_nodes} nodes", field=path)
        if depth > self.max_depth:
            raise InvalidInput(f"{path}: a condition may nest at most {self.max_depth} deep", field=path)
        if not isinstance(raw, dict):
            raise InvalidInput(f"{path}: expected an object with exactly one field", field=path)
        given = [k for k, v in raw.items() if v is not None]
        if unknown := sorted(set(given) - set(FIELDS)):
            raise InvalidInput(f"{path}: unknown field(s) {', '.join(unknown)}", field=path)
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise InvalidInput(f"{path}: set exactly one field (found: {found})", field=path)
        kind = given[0]
        value = raw[kind]
        where = f"{path}.{kind}"
        if kind == "not":
            return Node(kind, path, (self.node(value, where, depth + 1),))
        if kind in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise InvalidInput(f"{where}: expected a non-empty list of conditions", field=where)
            return Node(
                kind, path, tuple(self.node(c, f"{where}[{i}]", depth + 1) for i, c in enumerate(value))
            )
        return Node(kind, path, args=self.leaf(kind, value, where))

    def leaf(self, kind: str, raw: object, where: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: expected an object", field=where)
        args = {k: v for k, v in raw.items() if v is not None}
        required, optional = _LEAF_FIELDS[kind]
        if unknown := sorted(set(args) - required - optional):
            raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)}", field=where)
        if missing := sorted(required - set(args)):
            raise InvalidInput(f"{where}: missing {', '.join(missing)}", field=where)
        if kind in _ONE_OF and not args:
            raise InvalidInput(f"{where}: set at least one of {', '.join(sorted(optional))}", field=where)
        for name, value in args.items():
            self.value(kind, name, value, f"{where}.{name}")
        return args

    def value(self, kind: str, name: str, value: Any, at: str) -> None:
        """One leaf field: its type and range, so the compiler never sees a bad value."""
        if name in ("withinDays", "olderThanDays", "minCount", "minPaidOrders", "lastOrderWithinDays"):
            low = 0 if name == "olderThanDays" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_DAYS * 1000:
                raise InvalidInput(f"{at}: expected an integer of at least {low}", field=at)
            if name in ("withinDays", "olderThanDays", "lastOrderWithinDays") and value > MAX_DAYS:
                raise InvalidInput(f"{at}: at most {MAX_DAYS} days", field=at)
        elif name == "minLifetimeValueCents":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CENTS:
                raise InvalidInput(f"{at}: expected an integer of at least 1 (cents)", field=at)
        elif name == "minScore":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e9:
                raise InvalidInput(f"{at}: expected a score of at least 0", field=at)
        elif name in ("channel", "firstChannel"):
            _member(value, Channel.__members__, at)
        elif name == "kind":
            _member(value, IdentityKind.__members__, at)
        elif name == "purpose":
            _member(value, Purpose.__members__, at)
        elif name == "minWeight":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise InvalidInput(f"{at}: expected a weight between 0 and 1", field=at)
        elif name == "pathStartsWith":
            if not isinstance(value, list) or not value or len(value) > len(Channel):
                raise InvalidInput(f"{at}: expected 1 to {len(Channel)} channels", field=at)
            for i, item in enumerate(value):
                _member(item, Channel.__members__, f"{at}[{i}]")
            if len(set(value)) != len(value):
                raise InvalidInput(f"{at}: a channel appears once in a journey", field=at)
        elif name in ("statuses", "types", "tiers"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                raise InvalidInput(f"{at}: expected a non-empty list of at most {MAX_LIST}", field=at)
            for i, item in enumerate(value):
                _text(item, f"{at}[{i}]")
            if name == "statuses":
                known = self.order_statuses if kind == "orders" else self.booking
                for i, item in enumerate(value):
                    _member(item, known, f"{at}[{i}]")
        else:
            _text(value, at)


def _member(value: object, known: Any, at: str) -> None:
    if not isinstance(value, str) or value not in known:
        raise InvalidInput(f"{at}: unknown value {value!r} (known: {', '.join(sorted(known))})", field=at)


def _text(value: object, at: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidInput(f"{at}: expected non-empty text of at most {MAX_TEXT} characters", field=at)


def parse_condition(
    raw: object, *, max_depth: int, max_nodes: int, order_statuses: set[str], reservation_statuses: set[str]
) -> Node:
    """The checked tree; BAD_USER_INPUT naming the node's path (`condition.all[1].not`) otherwise."""
    walk = _Walk(
        max_depth=max_depth, max_nodes=max_nodes, order_statuses=order_statuses, booking=reservation_statuses
    )
    return walk.node(raw, "condition", 1)


def pruned(raw: Any) -> Any:
    """The condition as saved: nulls dropped, so the stored JSON is what the operator set."""
    if isinstance(raw, dict):
        return {k: pruned(v) for k, v in raw.items() if v is not None}
    if isinstance(raw, list):
        return [pruned(v) for v in raw]
    return raw
