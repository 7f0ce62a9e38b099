"""Identify traits as profile fields: which column, encrypted or plaintext, each trait goes to.

Known personal fields go to their encrypted Customer columns (e-mail and phone with their blind
indexes), other personal traits to the encrypted `traits`, non-personal ones (per the property
classes) to the plaintext `attributes`. The latest identify wins per field.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from types import SimpleNamespace
from typing import Any

from cdp.crypto.fields import EncryptedField, Sealed
from cdp.db import raw_cursor
from cdp.ingest.classification import Classes
from cdp.ingest.models import PropertyClassKind
from cdp.profiles.jurisdiction import country_code, jurisdiction_for
from cdp.profiles.models import Customer, IdentityKind
from cdp.profiles.resolution import Claim, Ident, identifier

_TRAIT_FIELDS = {
    "firstname": "first_name",
    "lastname": "last_name",
    "birthday": "birth_date",
    "birthdate": "birth_date",
    "dateofbirth": "birth_date",
    "address": "address",
}


def trait_country(traits: dict[str, Any]) -> str:
    address = traits.get("address")
    value = traits.get("country")
    if isinstance(address, dict) and isinstance(address.get("country"), str):
        value = address["country"]
    return country_code(value) if isinstance(value, str) else ""


def profile_update(traits: dict[str, Any], table: Classes, claim: Claim) -> dict[str, Any]:
    """Identify traits as Customer fields: known personal fields to their encrypted columns,
    other personal traits to the encrypted `traits`, non-personal ones to `attributes`.

    E-mail and phone reuse the claim's normalised values and indexes (phone parsing is the
    dearest step of an identify)."""
    update: dict[str, Any] = {"traits": {}, "attributes": {}}
    parsed = {ident.kind: ident for ident in claim.idents}
    for key, value in traits.items():
        normalized = key.replace("_", "").replace("-", "").lower()
        if normalized == "email" and key == "email":
            ident = parsed.get(IdentityKind.EMAIL) or _placeholder_ident(IdentityKind.EMAIL, value)
            if ident is not None:
                update["email"], update["email_index"] = ident.normalized, ident.index
                continue
        elif normalized == "phone" and key == "phone":
            ident = parsed.get(IdentityKind.PHONE) or _placeholder_ident(IdentityKind.PHONE, value)
            if ident is not None:
                update["phone"], update["phone_index"] = ident.normalized, ident.index
                continue
        elif normalized in _TRAIT_FIELDS:
            target = _TRAIT_FIELDS[normalized]
            if target == "birth_date" and isinstance(value, str):
                try:
                    update[target] = dt.date.fromisoformat(value[:10])
                    continue
                except ValueError:
                    pass
            elif target == "address" and isinstance(value, dict):
                update[target] = value
                continue
            elif target in ("first_name", "last_name") and isinstance(value, str):
                update[target] = value
                continue
        if table.trait_kind(key) == PropertyClassKind.NON_PERSONAL:
            update["attributes"][key] = value
        else:
            update["traits"][key] = value
    country = trait_country(traits)
    if country:
        update["country"] = country
    return update


def _placeholder_ident(kind: str, value: Any) -> Ident | None:
    """A placeholder e-mail or phone still goes to the profile's field (it links nothing)."""
    return identifier(kind, value, {})


def profile_update_merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if key in ("traits", "attributes"):
            into.setdefault(key, {}).update(value)
        else:
            into[key] = value


def profile_updates_apply(updates: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Latest identify wins per field; one UPDATE per changed stored profile (encrypted columns
    cannot be bulk-updated: each value is sealed for its own row).

    Most identifies repeat what the profile holds: the profiles are first compared in one raw
    read (`_profiles_changing`), and only those that change are loaded as models and saved.
    The data keys of the profiles are expected in the cache (the batch loaded them)."""
    updates = {cid: updates[cid] for cid in _profiles_changing(updates)}
    if not updates:
        return
    # Only the columns the updates touch: fewer values to read and to decrypt.
    fields = {"country"}.union(*updates.values())
    customers = (
        Customer.objects.filter(id__in=list(updates))
        .only(*fields)
        .order_by("id")
        .prefetch_subject_keys()
    )  # in id order: two batches updating the same profiles lock them in the same order
    for customer in customers:
        update = updates[customer.id]
        changed: list[str] = []
        for name in ("traits", "attributes"):
            extra = update.get(name) or {}
            current = getattr(customer, name) or {}
            if extra and any(current.get(k) != v for k, v in extra.items()):
                setattr(customer, name, {**current, **extra})
                changed.append(name)
        for name, value in update.items():
            if name in ("traits", "attributes"):
                continue
            if getattr(customer, name) != value:
                setattr(customer, name, value)
                changed.append(name)
        if "country" in changed:
            customer.jurisdiction = jurisdiction_for(customer.country)
            changed.append("jurisdiction")
        if changed:
            customer.save(update_fields=[*changed, "updated_at"])


def profile_initial_fields(update: dict[str, Any] | None) -> dict[str, Any]:
    if not update:
        return {}
    values = {k: v for k, v in update.items() if k not in ("traits", "attributes")}
    values["traits"] = update.get("traits") or None
    values["attributes"] = update.get("attributes") or {}
    return values


_ENCRYPTED_COLUMNS = {
    f.name: f for f in Customer._meta.concrete_fields if isinstance(f, EncryptedField)
}
_INDEXED = {"email": "email_index", "phone": "phone_index"}


def _profiles_changing(updates: dict[uuid.UUID, dict[str, Any]]) -> list[uuid.UUID]:
    """The profiles of `updates` that some field of their update would change, compared on one
    raw read of just the columns involved (no model instances). E-mail and phone compare by
    blind index when the update carries one (an equal index is an equal normalised value, so
    nothing is decrypted); other encrypted columns are opened only when present in an update,
    exactly as the field opens them. A profile no longer stored is left out."""
    if not updates:
        return []
    names = sorted({"country"}.union(*updates.values()))
    columns = ", ".join(f'"{Customer._meta.get_field(name).column}"' for name in names)
    with raw_cursor() as cursor:
        cursor.execute(
            f"SELECT id, {columns} FROM profiles_customer WHERE id = ANY(%b::uuid[])",  # noqa: S608
            [list(updates)],
        )
        rows = cursor.fetchall()
    changing = []
    for cid, *values in rows:
        stored = dict(zip(names, values, strict=True))
        if _changes(cid, stored, updates[cid]):
            changing.append(cid)
    return changing


def _changes(cid: uuid.UUID, stored: dict[str, Any], update: dict[str, Any]) -> bool:
    """Would `update` change the profile whose raw column values are `stored`?"""
    row = SimpleNamespace(id=cid)  # what EncryptedField.open reads: subject and row id
    for name, value in update.items():
        if name in ("traits", "attributes"):
            if not value:
                continue
            current = _column_value(row, name, stored[name]) or {}
            if any(current.get(k) != v for k, v in value.items()):
                return True
            continue
        index = _INDEXED.get(name)
        if index is not None and update.get(index) is not None:
            if stored[index] is not None and bytes(stored[index]) == update[index]:
                continue  # same blind index: the same normalised value
            return True
        if _column_value(row, name, stored[name]) != value:
            return True
    return False


def _column_value(row: SimpleNamespace, name: str, raw: Any) -> Any:
    """A raw column value as the model attribute holds it: encrypted columns opened (as the
    field opens them), JSON decoded (Django's connection reads jsonb as text), bytes as bytes."""
    if raw is None:
        return None
    field = _ENCRYPTED_COLUMNS.get(name)
    if field is not None:
        return field.open(row, Sealed(bytes(raw)))  # type: ignore[arg-type]
    if isinstance(raw, str) and name == "attributes":
        return json.loads(raw)
    if isinstance(raw, memoryview):
        return bytes(raw)
    return raw
