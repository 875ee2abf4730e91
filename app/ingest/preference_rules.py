"""The dictionary's `preferences` section: what shows interest in a SKU, and how much it weighs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain import Channel

_KINDS = ("view", "favorite", "cart_add", "purchase")
_DEFAULT_WEIGHTS = {"view": 1.0, "favorite": 3.0, "cart_add": 4.0, "purchase": 6.0}


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: expected a list of names")
    return tuple(value)


def _per_channel(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of channel -> field names")
    out = {}
    for key, names in raw.items():
        if key != "*" and key not in Channel.__members__:
            raise ValueError(f"{where}: unknown channel {key!r}")
        out[str(key)] = _names(names, f"{where}.{key}")
    return out


@dataclass(frozen=True)
class PreferenceRules:
    """Weights, half-life and the channel-native fields that name a SKU (and its name)."""

    half_life_days: float = 30.0
    weights: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    view_events: tuple[str, ...] = ("page_view", "click", "product_view")
    favorite_events: tuple[str, ...] = ("favorite",)
    paid_statuses: tuple[str, ...] = ("PAID", "SHIPPED", "COMPLETED")
    sku_fields: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"*": ("sku",)})
    name_fields: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"*": ("name",)})

    @classmethod
    def of(cls, raw: object) -> PreferenceRules:
        """Validate the section (absent: the defaults); ValueError naming the bad key."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("preferences: expected a mapping")
        half_life = raw.get("half_life_days", 30)
        if isinstance(half_life, bool) or not isinstance(half_life, int | float) or half_life <= 0:
            raise ValueError("preferences.half_life_days: expected a positive number")
        weights = dict(_DEFAULT_WEIGHTS)
        for kind, weight in (raw.get("weights") or {}).items():
            if kind not in _KINDS:
                raise ValueError(f"preferences.weights: unknown kind {kind!r} (known: {', '.join(_KINDS)})")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ValueError(f"preferences.weights.{kind}: expected a number >= 0")
            weights[kind] = float(weight)
        return cls(
            half_life_days=float(half_life),
            weights=weights,
            view_events=_names(raw.get("view_events", list(cls.view_events)), "preferences.view_events"),
            favorite_events=_names(
                raw.get("favorite_events", list(cls.favorite_events)), "preferences.favorite_events"
            ),
            paid_statuses=_names(
                raw.get("paid_statuses", list(cls.paid_statuses)), "preferences.paid_statuses"
            ),
            sku_fields=_per_channel(raw.get("sku_fields"), "preferences.sku_fields") or {"*": ("sku",)},
            name_fields=_per_channel(raw.get("name_fields"), "preferences.name_fields") or {"*": ("name",)},
        )

    def _first(
        self, fields: dict[str, tuple[str, ...]], channel: Channel, props: dict[str, Any]
    ) -> str | None:
        for name in fields.get(channel.value, ()) + fields.get("*", ()):
            value = props.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
        return None

    def sku_of(self, channel: Channel, properties: dict[str, Any]) -> str | None:
        """The SKU an event of this channel names, by the channel's fields first, then everyone's."""
        return self._first(self.sku_fields, channel, properties)

    def name_of(self, channel: Channel, properties: dict[str, Any]) -> str | None:
        """The product name an event (or order item) gives, if any."""
        return self._first(self.name_fields, channel, properties)
