"""Bulk writes of new profiles, identities and source records with binary COPY.

The set-based twin of `customers_create_many` for imports: the same rows (data keys first, every
personal value sealed for its own row and subject), written with PostgreSQL's binary COPY inside
the caller's transaction. Django's `bulk_create` built each chunk's INSERT client-side, which
cost three quarters of an import's time; the text COPY that replaced it spent a third of the rest
escaping ciphertexts to hex and sealing each value through the model field one at a time.

Values are sealed here exactly as `EncryptedField.seal` seals them (the subject's data key; the
associated data binds header, table, column, subject and row; a fresh random nonce per value),
with the chunk's data keys looked up once and the nonces drawn from the system's generator in
blocks. JSON goes through orjson (the field's own serialiser for what orjson refuses).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection
from django.utils import timezone

from cdp.crypto import aead
from cdp.crypto.fields import EncryptedField
from cdp.crypto.subject_keys import (
    DataKey,
    subject_keys_create_new,
    subject_keys_held,
)
from cdp.db import binding_cursor, copy_binary, json_bytes, time_ordered_ids
from cdp.profiles.jurisdiction import jurisdiction_for
from cdp.profiles.models import Customer, CustomerStatus, Identity, SourceRecord

_CUSTOMER_COLUMNS = (
    "id",
    "status",
    "jurisdiction",
    "country",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "address",
    "traits",
    "email_index",
    "phone_index",
    "attributes",
    "merged_into_id",
    "created_at",
    "updated_at",
)
_CUSTOMER_TYPES = (
    "uuid",
    "text",
    "text",
    "text",
    *["bytea"] * 7,
    "bytea",
    "bytea",
    "jsonb",
    "uuid",
    "timestamptz",
    "timestamptz",
)
_IDENTITY_COLUMNS = ("id", "customer_id", "kind", "namespace", "value", "value_index", "created_at")
_IDENTITY_TYPES = ("uuid", "uuid", "text", "text", "bytea", "bytea", "timestamptz")
_RECORD_COLUMNS = (
    "id",
    "customer_id",
    "source_name",
    "job_id",
    "row_number",
    "row_index",
    "content_index",
    "data",
    "created_at",
)
_RECORD_TYPES = ("uuid", "uuid", "text", "uuid", "int8", "bytea", "bytea", "bytea", "timestamptz")

_NONCE_BLOCK = 4_096


class _Sealer:
    """`EncryptedField.seal` for many values: each value gets its own fresh random nonce, taken
    from blocks read from the system's generator at once (`aead.nonces`)."""

    def __init__(self) -> None:
        self._nonces: list[bytes] = []

    def seal(self, key: DataKey, where: bytes, row: bytes, plaintext: bytes) -> bytes:
        if not self._nonces:
            self._nonces = aead.nonces(_NONCE_BLOCK)
        # Built whole per value: each new profile's key seals about seven values, so caching
        # the prefix per key (`DataKey.aad_prefix`) saved nothing.
        aad = aead.associated_data(key.header, where, key.subject, row)
        return aead.seal_with_nonce(key.cipher, key.header, self._nonces.pop(), plaintext, aad)


def _json(field: EncryptedField, value: Any) -> bytes:
    """What the JSON field stores for `value` (its `from_bytes` reads either serialisation)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return field.to_bytes(value)


def _copy(table: str, columns: Sequence[str], types: Sequence[str], rows: list[tuple]) -> None:
    # Errors as Django's: a unique violation (an identifier a concurrent writer linked first)
    # must reach the run as the IntegrityError it retries the chunk on, not as psycopg's own.
    with connection.wrap_database_errors:
        copy_binary(table, columns, types, rows)


# Sealed as JSON through orjson (the field's own serialiser for what orjson refuses).
_JSON_SEALED = frozenset(("address", "traits"))


def customers_copy(new_customers: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Create profiles (data keys first) with their initial values, in one COPY."""
    if not new_customers:
        return
    # The plan's new profile ids are fresh random UUIDs: their keys go in by COPY, unchecked.
    keys = subject_keys_create_new(new_customers)
    fields = {name: Customer._meta.get_field(name) for name in _CUSTOMER_COLUMNS[4:11]}
    where = {name: field.where for name, field in fields.items()}
    sealer = _Sealer()
    now = timezone.now()
    jurisdictions: dict[str, str] = {}
    rows = []
    for cid, values in new_customers.items():
        key = keys[cid]
        country = values.get("country") or ""
        jurisdiction = jurisdictions.get(country)
        if jurisdiction is None:
            jurisdiction = jurisdictions[country] = str(jurisdiction_for(country))
        sealed: list[bytes | None] = []
        for name, field in fields.items():
            value = values.get(name)
            if value is None:
                sealed.append(None)
            else:
                plaintext = _json(field, value) if name in _JSON_SEALED else field.to_bytes(value)
                sealed.append(sealer.seal(key, where[name], key.subject, plaintext))
        rows.append(
            (
                cid,
                CustomerStatus.ACTIVE.value,
                jurisdiction,
                country,
                *sealed,
                values.get("email_index"),
                values.get("phone_index"),
                values.get("attributes") or {},
                None,
                now,
                now,
            )
        )
    _copy(Customer._meta.db_table, _CUSTOMER_COLUMNS, _CUSTOMER_TYPES, rows)


def identities_copy(identities: Sequence[tuple[str, str, str, bytes, uuid.UUID]]) -> None:
    """(kind, namespace, normalised value, blind index, customer id) rows, in one COPY."""
    if not identities:
        return
    keys = subject_keys_held(cid for *_, cid in identities)
    where = Identity._meta.get_field("value").where
    sealer = _Sealer()
    now = timezone.now()
    rows = []
    for (kind, namespace, value, index, cid), iid in zip(
        identities, time_ordered_ids(len(identities)), strict=True
    ):
        blob = sealer.seal(keys[cid], where, iid, value.encode("utf-8"))
        rows.append((iid, cid, kind, namespace, blob, index, now))
    _copy(Identity._meta.db_table, _IDENTITY_COLUMNS, _IDENTITY_TYPES, rows)


def source_records_copy(records: Sequence[dict[str, Any]]) -> None:
    """Lineage rows (customer_id, source_name, job_id, row_number, row_index, content_index,
    data), the data sealed under the customer's key, in one COPY."""
    if not records:
        return
    keys = subject_keys_held(r["customer_id"] for r in records)
    field = SourceRecord._meta.get_field("data")
    where = field.where
    sealer = _Sealer()
    now = timezone.now()
    rows = []
    for r, rid in zip(records, time_ordered_ids(len(records)), strict=True):
        cid = r["customer_id"]
        blob = sealer.seal(keys[cid], where, rid, _json(field, r["data"]))
        rows.append(
            (
                rid,
                cid,
                r["source_name"],
                r["job_id"],
                r["row_number"],
                r["row_index"],
                r["content_index"],
                blob,
                now,
            )
        )
    _copy(SourceRecord._meta.db_table, _RECORD_COLUMNS, _RECORD_TYPES, rows)


def _stored(field: Any, customer: Customer) -> Any:
    """What `save()` would write for `field` of `customer` (ciphertexts sealed by the field's
    own `pre_save`, so for this customer's row and key; JSON as text, cast by the statement)."""
    value = field.pre_save(customer, False)
    if value is None:
        return None
    if isinstance(field, EncryptedField):
        return value.blob
    if field.get_internal_type() == "JSONField":
        return json_bytes(value).decode()
    return value


def customers_update(changes: Sequence[tuple[Customer, Sequence[str]]]) -> None:
    """Save the changed fields of stored profiles: one UPDATE per set of changed columns (a
    chunk holds a handful of such sets), not a `save()` per profile."""
    groups: dict[tuple[str, ...], list[Customer]] = {}
    for customer, names in changes:
        groups.setdefault(tuple(sorted(set(names))), []).append(customer)
    now = timezone.now()
    quote = connection.ops.quote_name
    with binding_cursor() as cursor:
        for names, customers in groups.items():
            fields = [Customer._meta.get_field(name) for name in names]
            columns, arrays, assignments = [], [], []
            for field in fields:
                column = quote(field.column)
                json = field.get_internal_type() == "JSONField"
                columns.append(column)
                arrays.append(f"%b::{'text' if json else field.db_type(connection)}[]")
                assignments.append(f"{column} = v.{column}{'::jsonb' if json else ''}")
            cursor.execute(
                f"UPDATE {quote(Customer._meta.db_table)} AS c "  # noqa: S608
                f"SET {', '.join(assignments)}, updated_at = %b "
                f"FROM unnest(%b::uuid[], {', '.join(arrays)}) AS v(id, {', '.join(columns)}) "
                "WHERE c.id = v.id",
                [
                    now,
                    [c.id for c in customers],
                    *([_stored(field, c) for c in customers] for field in fields),
                ],
            )
