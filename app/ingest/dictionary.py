"""The data dictionary: applies the versioned YAML file so native records become standard ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml  # type: ignore[import-untyped]

from app.domain import Channel, IdentityKind
from app.ingest.cleaning import CURRENCY as _CURRENCY
from app.ingest.cleaning import ID_MAX_LENGTH, NUL, NUL_REASON
from app.ingest.cleaning import Unit as _Unit
from app.ingest.cleaning import cents as _cents
from app.ingest.cleaning import count as _count
from app.ingest.cleaning import need as _need
from app.ingest.cleaning import show as _show
from app.ingest.cleaning import text as _text
from app.ingest.preference_rules import PreferenceRules
from app.ingest.records import (
    RecordRejected,
    StdCart,
    StdEvent,
    StdOrder,
    StdOrderItem,
    StdRecord,
    StdReservation,
)

DEFAULT_PATH = Path(__file__).with_name("data_dictionary.yaml")
# The standard shapes' fields (records.py): (required, optional). Native names come from the file.
_SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "order": (frozenset({"order_id", "status", "total", "items"}), frozenset({"currency", "placed_at"})),
    "cart": (frozenset({"sku", "quantity"}), frozenset()),
    "event": (frozenset({"event"}), frozenset({"properties"})),
    "reservation": (frozenset({"reservation_id", "service", "status"}), frozenset({"starts_at"})),
}
ANY_EVENT = "*"  # interest rules under this name apply to every event type
_ITEM_FIELDS = (frozenset({"sku", "quantity", "unit_price"}), frozenset({"name"}))
_AMOUNT_FIELDS = frozenset({"total", "unit_price"})


_KINDS = frozenset(IdentityKind.__members__)


def _plain_id(value: object) -> TypeGuard[str]:
    """A string _text accepts as it is (the fast path leaves integer ids to the careful one)."""
    return type(value) is str and len(value) <= ID_MAX_LENGTH and bool(value.strip()) and NUL not in value


def _amount(value: object, unit: _Unit) -> int:
    """_cents, with whole non-negative integers (the common case) done directly."""
    if type(value) is int and value >= 0:
        return value * unit.cents_per_unit
    if value is None:
        raise RecordRejected("amount", "missing")
    return _cents(value, "amount", unit)


def _cart_fast(spec: _TypeSpec, data: dict[str, Any]) -> StdCart | None:
    """The cart branch of parse_checked for a well-formed line; None otherwise."""
    sku, quantity = data.get(spec.fields["sku"]), data.get(spec.fields["quantity"])
    if not _plain_id(sku) or type(quantity) is not int or quantity < 0:
        return None
    return StdCart(sku, quantity)


@dataclass(frozen=True, slots=True)
class _TypeSpec:
    """One envelope type of one channel, compiled from the file: standard field -> native name."""

    name: str
    shape: str
    fields: dict[str, str]
    item_fields: dict[str, str]
    units: dict[str, _Unit]
    statuses: dict[str, int]


def _mapping(value: object, where: str) -> dict[Any, Any]:
    """Demand a non-empty mapping in the file, so mistakes fail at load time, not per record."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: expected a non-empty mapping")
    return value


def _setting(value: object, where: str) -> str:
    """Demand a non-empty string in the file."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {_show(value)}")
    return value


def _whole(value: object, where: str, minimum: int) -> int:
    """Demand an integer setting of at least `minimum` in the file."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


class DataDictionary:
    """The parsed, validated dictionary file; `parse` turns one envelope into a StdRecord."""

    def __init__(self, document: object) -> None:
        doc = _mapping(document, "top level")
        try:
            json.dumps(doc)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"values must be plain JSON data (quote dates and times): {exc}") from None
        self.document: dict[str, Any] = doc
        self.version: str = _setting(doc.get("version"), "version")
        zone = _setting(doc.get("default_timezone"), "default_timezone")
        try:
            self._zone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"default_timezone: unknown time zone {zone!r}") from None
        currency = _setting(doc.get("default_currency"), "default_currency")
        if not _CURRENCY.fullmatch(currency):
            raise ValueError(f"default_currency: expected a 3-letter code, got {currency!r}")
        self._currency = currency.upper()
        self.status_names: dict[int, str] = {}
        for code, name in _mapping(doc.get("status_names"), "status_names").items():
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError(f"status_names: codes must be integers, got {code!r}")
            self.status_names[code] = _setting(name, f"status_names.{code}")
        self.reservation_status_names: dict[int, str] = {}
        booked = doc.get("reservation_status_names")  # optional: without it, no reservation types
        for code, name in (_mapping(booked, "reservation_status_names") if booked else {}).items():
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError(f"reservation_status_names: codes must be integers, got {code!r}")
            self.reservation_status_names[code] = _setting(name, f"reservation_status_names.{code}")
        self._units = {
            _setting(name, "units"): self._unit(name, rules)
            for name, rules in _mapping(doc.get("units"), "units").items()
        }
        interest = doc.get("interest_rules")  # optional: without rules, events imply no tags
        self._interest: dict[str, list[tuple[str, float]]] = {
            _setting(event, "interest_rules"): self._rules(rules, f"interest_rules.{event}")
            for event, rules in (_mapping(interest, "interest_rules") if interest else {}).items()
        }
        self.preferences = PreferenceRules.of(doc.get("preferences"))
        unknown = set(self.preferences.paid_statuses) - set(self.status_names.values())
        if unknown:
            raise ValueError(f"preferences.paid_statuses: unknown status {sorted(unknown)[0]!r}")
        self._channels: dict[Channel, dict[str, _TypeSpec]] = {}
        for channel, types in _mapping(doc.get("channels"), "channels").items():
            if channel not in Channel.__members__:
                raise ValueError(f"channels: unknown channel {channel!r} (known: {', '.join(Channel)})")
            where = f"channels.{channel}"
            self._channels[Channel(channel)] = {
                _setting(name, where): self._type_spec(name, spec, f"{where}.{name}")
                for name, spec in _mapping(types, where).items()
            }

    def _unit(self, name: str, raw: object) -> _Unit:
        """Compile one unit's cleaning rules."""
        rules = _mapping(raw, f"units.{name}")
        cents = _whole(rules.get("cents_per_unit"), f"units.{name}.cents_per_unit", minimum=1)
        decimals = _whole(rules.get("max_decimals"), f"units.{name}.max_decimals", minimum=0)
        marks = rules.get("marks") or []
        if not isinstance(marks, list) or not all(isinstance(m, str) and m for m in marks):
            raise ValueError(f"units.{name}.marks: expected a list of strings")
        separator = rules.get("thousands_separator")
        if separator is not None:
            separator = _setting(separator, f"units.{name}.thousands_separator")
        return _Unit(name, cents, decimals, rules.get("text") is True, tuple(marks), separator)

    def _rules(self, raw: object, where: str) -> list[tuple[str, float]]:
        """Compile one event type's interest rules: (property, weight) pairs."""
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}: expected a non-empty list of {{property, weight}}")
        rules = []
        for i, entry in enumerate(raw):
            rule = _mapping(entry, f"{where}[{i}]")
            weight = rule.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise ValueError(f"{where}[{i}].weight: expected a positive number, got {weight!r}")
            rules.append((_setting(rule.get("property"), f"{where}[{i}].property"), float(weight)))
        return rules

    def _type_spec(self, name: str, raw: object, where: str) -> _TypeSpec:
        """Compile one channel type: its shape, field names, amount units and status map."""
        spec = _mapping(raw, where)
        shape = spec.get("shape")
        if not isinstance(shape, str) or shape not in _SHAPES:
            raise ValueError(f"{where}.shape: expected one of {', '.join(_SHAPES)}, got {shape!r}")
        units: dict[str, _Unit] = {}
        fields = self._fields(spec.get("fields"), f"{where}.fields", _SHAPES[shape], units)
        items: dict[str, str] = {}
        statuses: dict[str, int] = {}
        if shape == "order":
            items = self._fields(spec.get("item_fields"), f"{where}.item_fields", _ITEM_FIELDS, units)
        if shape in ("order", "reservation"):
            known, table = (
                (self.status_names, "status_names")
                if shape == "order"
                else (self.reservation_status_names, "reservation_status_names")
            )
            for native, code in _mapping(spec.get("statuses"), f"{where}.statuses").items():
                if isinstance(native, bool) or not isinstance(native, str | int):
                    raise ValueError(f"{where}.statuses: native values must be text or integers")
                if isinstance(code, bool) or not isinstance(code, int) or code not in known:
                    raise ValueError(f"{where}.statuses.{native}: {code!r} is not a code in {table}")
                statuses[str(native)] = code
        return _TypeSpec(name, shape, fields, items, units, statuses)

    def _fields(
        self, raw: object, where: str, allowed: tuple[frozenset[str], frozenset[str]], units: dict[str, _Unit]
    ) -> dict[str, str]:
        """Compile a standard-to-native field map (required, optional); amount units go to `units`."""
        mapping, (required, optional) = _mapping(raw, where), allowed
        if unknown := set(mapping) - required - optional:
            raise ValueError(f"{where}: unknown standard fields {sorted(map(str, unknown))}")
        if missing := required - set(mapping):
            raise ValueError(f"{where}: missing standard fields {sorted(missing)}")
        fields: dict[str, str] = {}
        for name, native in mapping.items():
            if name not in _AMOUNT_FIELDS:
                fields[name] = _setting(native, f"{where}.{name}")
                continue
            desc = _mapping(native, f"{where}.{name}")
            unit = desc.get("unit")
            if not isinstance(unit, str) or unit not in self._units:
                known = ", ".join(self._units)
                raise ValueError(f"{where}.{name}.unit: unknown unit {unit!r} (known: {known})")
            fields[name] = _setting(desc.get("field"), f"{where}.{name}.field")
            units[name] = self._units[unit]
        return fields

    def parse(self, channel: Channel, raw: object) -> StdRecord:
        """Validate one envelope and standardize its native data; raises RecordRejected."""
        # Most records are well formed: a lean pass takes those, the careful one finds the reason.
        record = self._parse_fast(channel, raw)
        return record if record is not None else self.parse_checked(channel, raw)

    def _parse_fast(self, channel: Channel, raw: object) -> StdRecord | None:
        """What parse_checked answers for a well-formed record, at a fraction of the cost; else None.

        Only exact JSON types pass (no subclasses, no integer ids): anything unusual goes the
        careful way, which either accepts it too or names the field.
        """
        if type(raw) is not dict or type(channel) is not Channel:
            return None
        source_id, type_name, data = raw.get("id"), raw.get("type"), raw.get("data")
        identity, occurred = raw.get("identity"), raw.get("occurredAt")
        if (
            not _plain_id(source_id)
            or type(type_name) is not str
            or type(identity) is not dict
            or type(occurred) is not str
            or type(data) is not dict
        ):
            return None
        spec = self._channels.get(channel, {}).get(type_name)
        kind, value, namespace = identity.get("kind"), identity.get("value"), identity.get("namespace")
        if (
            spec is None
            or type(kind) is not str
            or kind not in _KINDS
            or type(value) is not str
            or not value.strip()
            or NUL in value
            or (namespace is not None and (type(namespace) is not str or NUL in namespace))
        ):
            return None
        payload: StdOrder | StdCart | StdEvent | None
        if spec.shape == "reservation":
            return None  # rare enough for the careful parse
        try:
            occurred_at = self._time(occurred, "occurredAt")
            if spec.shape == "order":
                payload = self._order_fast(spec, data)
            elif spec.shape == "cart":
                payload = _cart_fast(spec, data)
            else:
                payload = self._event_fast(spec, data)
        except RecordRejected:
            return None
        if payload is None:
            return None
        return StdRecord(channel, source_id, type_name, kind, value, namespace, occurred_at, payload, raw)

    def _order_fast(self, spec: _TypeSpec, data: dict[str, Any]) -> StdOrder | None:
        """_order for a well-formed order (None otherwise); amounts in text go through _cents."""
        f = spec.fields
        order_id, status, items = data.get(f["order_id"]), data.get(f["status"]), data.get(f["items"])
        if not _plain_id(order_id) or type(items) is not list:
            return None
        key = str(status) if type(status) is int else status
        code = spec.statuses.get(key.strip()) if type(key) is str else None
        if code is None:
            return None
        total = _amount(data.get(f["total"]), spec.units["total"])
        currency = self._currency
        if "currency" in f and (given := data.get(f["currency"])) is not None:
            if type(given) is not str or not _CURRENCY.fullmatch(given.strip()):
                return None
            currency = given.strip().upper()
        placed_at = None
        if "placed_at" in f and (placed := data.get(f["placed_at"])) is not None:
            placed_at = self._time(placed, "placed_at")
        fi, unit = spec.item_fields, spec.units["unit_price"]
        lines = []
        for item in items:
            if type(item) is not dict:
                return None
            sku, quantity = item.get(fi["sku"]), item.get(fi["quantity"])
            name = item.get(fi["name"]) if "name" in fi else None
            if not _plain_id(sku) or type(quantity) is not int or quantity < 1:
                return None
            if name is not None and type(name) is not str:
                return None
            lines.append(StdOrderItem(sku, name, quantity, _amount(item.get(fi["unit_price"]), unit)))
        return StdOrder(order_id, code, total, currency, tuple(lines), placed_at)

    def _event_fast(self, spec: _TypeSpec, data: dict[str, Any]) -> StdEvent | None:
        """_event for a well-formed event; None otherwise."""
        name = data.get(spec.fields["event"])
        native = spec.fields.get("properties")
        properties = data.get(native) if native else None
        if not _plain_id(name) or (properties is not None and type(properties) is not dict):
            return None
        return StdEvent(name, dict(properties or {}))

    def parse_checked(self, channel: Channel, raw: object) -> StdRecord:
        """The careful parse: every check in order, so a rejection names the first bad field."""
        if not isinstance(raw, dict):
            raise RecordRejected("record", f"expected a JSON object, got {type(raw).__name__}")
        source_id = _text(*_need(raw, "id", ""))
        types = self._channels.get(channel, {})
        type_name, _ = _need(raw, "type", "")
        if not isinstance(type_name, str) or type_name not in types:
            known = ", ".join(types) or "none"
            raise RecordRejected("type", f"unknown type {_show(type_name)} for {channel} (known: {known})")
        identity = raw.get("identity")
        if not isinstance(identity, dict):
            raise RecordRejected("identity", "expected an object with kind and value")
        kind = identity.get("kind")
        if not isinstance(kind, str) or kind not in IdentityKind.__members__:
            known = ", ".join(IdentityKind)
            raise RecordRejected("identity.kind", f"unknown identity kind {_show(kind)} (known: {known})")
        value = _text(*_need(identity, "value", "identity"), max_length=None)
        namespace = identity.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise RecordRejected("identity.namespace", f"expected a string, got {_show(namespace)}")
        if namespace is not None and NUL in namespace:
            raise RecordRejected("identity.namespace", NUL_REASON)
        occurred_at = self._time(*_need(raw, "occurredAt", ""))
        data = raw.get("data")
        if not isinstance(data, dict):
            raise RecordRejected("data", "expected a JSON object")
        spec = types[type_name]
        payload: StdOrder | StdCart | StdEvent | StdReservation
        if spec.shape == "order":
            payload = self._order(channel, spec, data)
        elif spec.shape == "reservation":
            payload = self._reservation(channel, spec, data)
        elif spec.shape == "cart":
            sku = _text(*_need(data, spec.fields["sku"], "data"))
            payload = StdCart(sku, _count(*_need(data, spec.fields["quantity"], "data"), minimum=0))
        else:
            payload = self._event(spec, data)
        std = (Channel(channel), source_id, type_name, kind, value, namespace, occurred_at, payload, raw)
        return StdRecord(*std)

    def _time(self, value: object, where: str) -> datetime:
        """ISO-8601 to aware UTC; a time without offset is in the file's default_timezone."""
        if not isinstance(value, str):
            raise RecordRejected(where, f"expected an ISO-8601 timestamp, got {_show(value)}")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordRejected(where, f"not an ISO-8601 timestamp: {_show(value)}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._zone)
        return moment.astimezone(UTC)

    def _order(self, channel: Channel, spec: _TypeSpec, data: dict[str, Any]) -> StdOrder:
        """Standardize an order: id, status code, cents, currency, placed time, items."""
        f = spec.fields
        order_id = _text(*_need(data, f["order_id"], "data"))
        status, where = _need(data, f["status"], "data")
        key = str(status) if isinstance(status, int) and not isinstance(status, bool) else status
        code = spec.statuses.get(key.strip()) if isinstance(key, str) else None
        if code is None:
            known = ", ".join(spec.statuses)
            reason = f"unknown status {_show(status)} for {channel} {spec.name}s (known: {known})"
            raise RecordRejected(where, reason)
        total_cents = _cents(*_need(data, f["total"], "data"), unit=spec.units["total"])
        currency = self._currency
        if "currency" in f and data.get(f["currency"]) is not None:
            given, where = _need(data, f["currency"], "data")
            if not isinstance(given, str) or not _CURRENCY.fullmatch(given.strip()):
                raise RecordRejected(where, f"not a currency code: {_show(given)}")
            currency = given.strip().upper()
        placed_at = None
        if "placed_at" in f and data.get(f["placed_at"]) is not None:
            placed_at = self._time(*_need(data, f["placed_at"], "data"))
        items, where = _need(data, f["items"], "data")
        if not isinstance(items, list):
            raise RecordRejected(where, "expected a list")
        std_items = tuple(self._item(spec, item, f"{where}[{i}]") for i, item in enumerate(items))
        return StdOrder(order_id, code, total_cents, currency, std_items, placed_at)

    def _reservation(self, channel: Channel, spec: _TypeSpec, data: dict[str, Any]) -> StdReservation:
        """Standardize a reservation: id, service, status code, when the service takes place."""
        f = spec.fields
        reservation_id = _text(*_need(data, f["reservation_id"], "data"))
        service = _text(*_need(data, f["service"], "data"))
        status, where = _need(data, f["status"], "data")
        key = str(status) if isinstance(status, int) and not isinstance(status, bool) else status
        code = spec.statuses.get(key.strip()) if isinstance(key, str) else None
        if code is None:
            known = ", ".join(spec.statuses)
            reason = f"unknown status {_show(status)} for {channel} {spec.name}s (known: {known})"
            raise RecordRejected(where, reason)
        starts_at = None
        if "starts_at" in f and data.get(f["starts_at"]) is not None:
            starts_at = self._time(*_need(data, f["starts_at"], "data"))
        return StdReservation(reservation_id, service, code, starts_at)

    def _item(self, spec: _TypeSpec, item: object, at: str) -> StdOrderItem:
        """Standardize one order line."""
        if not isinstance(item, dict):
            raise RecordRejected(at, "expected a JSON object")
        f = spec.item_fields
        sku = _text(*_need(item, f["sku"], at))
        quantity = _count(*_need(item, f["quantity"], at), minimum=1)
        unit_price = _cents(*_need(item, f["unit_price"], at), unit=spec.units["unit_price"])
        name = item.get(f["name"]) if "name" in f else None
        if name is not None and not isinstance(name, str):
            raise RecordRejected(f"{at}.{f['name']}", f"expected a string, got {_show(name)}")
        return StdOrderItem(sku, name, quantity, unit_price)

    def _event(self, spec: _TypeSpec, data: dict[str, Any]) -> StdEvent:
        """Standardize a behaviour event; any event name is accepted, only structure is checked."""
        name = _text(*_need(data, spec.fields["event"], "data"))
        native = spec.fields.get("properties")
        properties = data.get(native) if native else None
        if properties is not None and not isinstance(properties, dict):
            raise RecordRejected(f"data.{native}", f"expected a JSON object, got {_show(properties)}")
        return StdEvent(name, dict(properties or {}))

    def paid_codes(self) -> list[int]:
        """The status codes of orders that reached PAID or later (cancelled excluded)."""
        return sorted(c for c, n in self.status_names.items() if n in self.preferences.paid_statuses)

    def cart_fields(self, channel: Channel) -> dict[str, tuple[str, str]]:
        """Per cart type of a channel, the native names of its SKU and quantity fields."""
        return {
            n: (s.fields["sku"], s.fields["quantity"])
            for n, s in self._channels.get(channel, {}).items()
            if s.shape == "cart"
        }

    def cart_types(self) -> list[str]:
        """The envelope types, in any channel, that carry cart lines."""
        return sorted({n for types in self._channels.values() for n, s in types.items() if s.shape == "cart"})

    def cart_line(self, channel: Channel, type_name: str, raw: object) -> StdCart | None:
        """The (sku, quantity) a stored cart record carried; None if it is not a readable cart line."""
        spec = self._channels.get(channel, {}).get(type_name)
        data = raw.get("data") if isinstance(raw, dict) else None
        if spec is None or spec.shape != "cart" or not isinstance(data, dict):
            return None
        return _cart_fast(spec, data)

    @property
    def interest_rules(self) -> dict[str, list[tuple[str, float]]]:
        """Per event type ("*": every type), the (property, weight) pairs that name interest tags."""
        return self._interest

    def interest_tags(self, event_type: str, properties: dict[str, Any]) -> list[tuple[str, float]]:
        """Weighted interest tags an event implies, per the file's interest_rules (first rule wins)."""
        tags: dict[str, float] = {}
        own = self._interest.get(event_type, [])
        named = {prop for prop, _ in own}
        rules = own + [(p, w) for p, w in self._interest.get(ANY_EVENT, []) if p not in named]
        for prop, weight in rules:
            value = properties.get(prop)
            for tag in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                if isinstance(tag, str) and tag.strip():
                    tags.setdefault(tag.strip(), weight)
        return list(tags.items())


def load_dictionary(path: Path | None = None) -> DataDictionary:
    """Load and validate a dictionary file (default: the packaged one); ValueError if malformed."""
    source = path or DEFAULT_PATH
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    try:
        return DataDictionary(document)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
