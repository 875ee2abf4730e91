"""The identity graph's shared rules and vocabulary: links asked for, one-per-namespace, what may be shown."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain import NAMESPACED_KINDS, IdentityKey, IdentityKind, IdentityRecord
from app.errors import IdentityConflict, InvalidInput
from app.phones import mask_phone, normalize_phone

MAX_ATTEMPTS = 3


class Retry(Exception):
    """The graph moved under us between reading and locking; plan again."""


def make_key(kind: IdentityKind, value: str, namespace: str | None, *, phone_region: str) -> IdentityKey:
    """Validate and normalize one identity as the graph stores it."""
    value = value.strip()
    namespace = (namespace or "").strip()
    if not value:
        raise InvalidInput(f"{kind} value is empty", field="value")
    if kind in NAMESPACED_KINDS and not namespace:
        what = "the issuing appid" if kind is IdentityKind.OPENID else "the provider"
        raise InvalidInput(f"{kind} needs a namespace: {what}", field="namespace")
    if kind not in NAMESPACED_KINDS and namespace:
        raise InvalidInput(f"{kind} takes no namespace", field="namespace")
    if len(value) > 128 or len(namespace) > 64:
        raise InvalidInput(f"{kind} value or namespace is too long", field="value")
    if kind is IdentityKind.PHONE:
        value = normalize_phone(value, default_region=phone_region)
    if kind is IdentityKind.EXTERNAL:
        namespace = namespace.lower()
    return IdentityKey(kind, namespace, value)


def shown(key: IdentityKey) -> str:
    """An identity's value as an error message may show it (phones masked)."""
    return mask_phone(key.value) if key.kind is IdentityKind.PHONE else key.value


def audited(key: IdentityKey | IdentityRecord, **more: object) -> dict[str, object]:
    """An identity as the audit log names it: kind and namespace, never the value (the log outlives
    an erasure, so it holds nothing that identifies a person but user ids)."""
    return {"kind": key.kind.value, "namespace": key.namespace or None, **more}


@dataclass(frozen=True)
class LinkRequest:
    keys: Sequence[IdentityKey]
    user_id: int | None
    actor: str
    rule: str
    source: str
    verified: bool = False
    dry_run: bool = False


def check_one_per_namespace(
    held: dict[int, list[IdentityRecord]], new_keys: Sequence[IdentityKey], target_id: int | None
) -> None:
    """Refuse a link whose resulting user would hold two identities of one (kind, namespace)."""
    slots: dict[tuple[IdentityKind, str], dict[str, int | None]] = defaultdict(dict)
    for user_id, identities in held.items():
        for ident in identities:
            slots[(ident.kind, ident.namespace)][ident.value] = user_id
    for key in new_keys:
        slots[(key.kind, key.namespace)].setdefault(key.value, None)
    for (kind, namespace), values in slots.items():
        if len(values) < 2:
            continue
        where = f"{kind}" + (f" of {namespace}" if namespace else "")
        held_by = ", ".join(
            f"{mask_phone(v) if kind is IdentityKind.PHONE else v}"
            + (f" (user {u})" if u is not None else " (new)")
            for v, u in values.items()
        )
        raise IdentityConflict(
            f"one user may hold one {where}; this link would give user "
            f"{target_id if target_id is not None else '(new)'} {len(values)}: {held_by}",
            kind=kind.value,
            namespace=namespace or None,
            userIds=sorted({str(u) for u in values.values() if u is not None}),
        )
