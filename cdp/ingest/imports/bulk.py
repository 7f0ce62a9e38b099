"""Bulk writes of new profiles, identities and source records with COPY.

The set-based twin of `customers_create_many` for imports: the same rows (data keys first, every
personal value sealed for its own row and subject by the model field itself), written with
PostgreSQL COPY inside the caller's transaction. Django's `bulk_create` builds each chunk's
INSERT client-side, which cost three quarters of an import's time (bench/import.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from cdp.crypto.subject_keys import subject_keys_create, subject_keys_load
from cdp.profiles.jurisdiction import jurisdiction_for
from cdp.profiles.models import Customer, CustomerStatus, Identity, SourceRecord
from cdp.profiles.resolution import raw_cursor

_CUSTOMER_SEALED = ("email", "phone", "first_name", "last_name", "birth_date", "address", "traits")


class _Holder:
    """What an encrypted field reads to seal a value: the subject's and the row's ids."""

    def __init__(self, **ids: Any) -> None:
        self.__dict__.update(ids)


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with raw_cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def customers_copy(new_customers: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Create profiles (data keys first) with their initial values, in one COPY."""
    if not new_customers:
        return
    subject_keys_create(new_customers)
    fields = {name: Customer._meta.get_field(name) for name in _CUSTOMER_SEALED}
    now = timezone.now()

    def rows() -> Iterable[Sequence[Any]]:
        for cid, values in new_customers.items():
            holder = _Holder(id=cid)
            country = values.get("country") or ""
            sealed = {}
            for name, field in fields.items():
                value = values.get(name)
                sealed[name] = None if value is None else field.seal(holder, value).blob
            yield (
                cid,
                CustomerStatus.ACTIVE,
                jurisdiction_for(country),
                country,
                *(sealed[name] for name in _CUSTOMER_SEALED),
                values.get("email_index"),
                values.get("phone_index"),
                json.dumps(values.get("attributes") or {}),
                None,
                now,
                now,
            )

    columns = [f.column for f in Customer._meta.local_concrete_fields]
    _copy(Customer._meta.db_table, columns, rows())


def identities_copy(identities: Sequence[tuple[str, str, str, bytes, uuid.UUID]]) -> None:
    """(kind, namespace, normalised value, blind index, customer id) rows, in one COPY."""
    if not identities:
        return
    subject_keys_load({cid for *_, cid in identities})
    field = Identity._meta.get_field("value")
    now = timezone.now()

    def rows() -> Iterable[Sequence[Any]]:
        for kind, namespace, value, index, cid in identities:
            iid = uuid.uuid4()
            blob = field.seal(_Holder(customer_id=cid, id=iid), value).blob
            yield (iid, cid, kind, namespace, blob, index, now)

    _copy(
        Identity._meta.db_table,
        ["id", "customer_id", "kind", "namespace", "value", "value_index", "created_at"],
        rows(),
    )


def source_records_copy(records: Sequence[dict[str, Any]]) -> None:
    """Lineage rows (customer_id, source_name, job_id, row_number, row_index, content_index,
    data), the data sealed under the customer's key, in one COPY."""
    if not records:
        return
    subject_keys_load({r["customer_id"] for r in records})
    field = SourceRecord._meta.get_field("data")
    now = timezone.now()

    def rows() -> Iterable[Sequence[Any]]:
        for r in records:
            rid = uuid.uuid4()
            blob = field.seal(_Holder(customer_id=r["customer_id"], id=rid), r["data"]).blob
            yield (
                rid,
                r["customer_id"],
                r["source_name"],
                r["job_id"],
                r["row_number"],
                r["row_index"],
                r["content_index"],
                blob,
                now,
            )

    columns = [f.column for f in SourceRecord._meta.local_concrete_fields]
    _copy(SourceRecord._meta.db_table, columns, rows())
