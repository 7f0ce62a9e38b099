"""Where a data subject's rows are: discovered from Django's model graph, not listed by hand.

Every concrete model (auto-created many-to-many tables included) with a ForeignKey or OneToOne
to `profiles.Customer` holds subject data; apps declare exceptions through
`cdp.crypto.registry.erasure_policy`, so a new model is covered without importing this package.
The residue scan goes further and reads every column of every table of the schema that could
hold an id or a blind index, whether Django knows the table or not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connection, models

from cdp.crypto.registry import Category, ErasureAction, erasure_policies, personal_fields
from cdp.profiles.models import Customer, Identity

PRIVACY_APP = "privacy"


@dataclass(frozen=True)
class Relation:
    model: type[models.Model]
    field: models.Field  # the FK/OneToOne to Customer

    @property
    def label(self) -> str:
        return self.model._meta.label


def subject_relations() -> list[Relation]:
    """Every (model, foreign key) that points at a customer, ordered by model label."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or not meta.managed or model is Customer or meta.app_label == PRIVACY_APP:
            continue
        for f in meta.concrete_fields:
            if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is Customer:
                found.append(Relation(model, f))
    return sorted(found, key=lambda r: (r.label, r.field.name))


def subject_customer_ids(customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and every profile merged into it (directly or through others)."""
    ids = {customer_id}
    frontier = [customer_id]
    while frontier:
        frontier = list(
            Customer.objects.filter(merged_into_id__in=frontier)
            .exclude(id__in=ids)
            .values_list("id", flat=True)
        )
        ids.update(frontier)
    return sorted(ids)


def subject_identifiers(customer_ids: Iterable[uuid.UUID]) -> set[tuple[str, bytes]]:
    """(kind, blind index) of every identifier of the customers: identities and profile indexes."""
    ids = list(customer_ids)
    found = {
        (kind, bytes(index))
        for kind, index in Identity.objects.filter(customer_id__in=ids).values_list(
            "kind", "value_index"
        )
    }
    for email_index, phone_index in Customer.objects.filter(id__in=ids).values_list(
        "email_index", "phone_index"
    ):
        if email_index:
            found.add(("email", bytes(email_index)))
        if phone_index:
            found.add(("phone", bytes(phone_index)))
    return found


def blind_index_columns() -> list[tuple[type[models.Model], str]]:
    """Registered blind-index fields of models that are not linked to customers by a key."""
    linked = {r.model for r in subject_relations()} | {Customer}
    out = []
    for entry in personal_fields():
        if entry.category != Category.BLIND_INDEX:
            continue
        try:
            model = entry.model_class()
        except LookupError:
            continue
        if model not in linked:
            out.append((model, entry.field))
    return out


def exception_tables() -> dict[str, dict[str, str]]:
    """Tables where a subject's id or blind indexes may stay by design, with the reason."""
    tables: dict[str, dict[str, str]] = {}
    for policy in erasure_policies():
        if policy.action != ErasureAction.RETAIN:
            continue
        try:
            model = apps.get_model(policy.model)
        except LookupError:
            continue
        tables[model._meta.db_table] = {
            "model": model._meta.label,
            "reason": policy.reason,
            "basis": policy.basis,
        }
    return tables


# --- the residue scan ---------------------------------------------------------------------------

_SHORTEST_ID = 32  # a UUID's hex form; blind indexes are in bytea columns
_TYPES = {
    "uuid": "uuid",
    "bytea": "bytea",
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "json": "json",
    "jsonb": "json",
}
_JSON_TYPES = {"json"}


@dataclass
class ScanResult:
    tables: int = 0
    columns: int = 0
    residue: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.residue

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables_scanned": self.tables,
            "columns_scanned": self.columns,
            "clean": self.clean,
            "residue": self.residue,
            "exceptions": self.exceptions,
        }


def _columns() -> dict[str, list[tuple[str, str]]]:
    """Columns that can hold an id or a blind index, per table of the current schema.

    Read from pg_catalog (information_schema's views cost a quarter of a second here).
    Partitioned tables are read through their parent, never partition by partition.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, t.typname, a.atttypmod "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped "
            "AND t.typname = ANY(%s) ORDER BY c.relname, a.attnum",
            [sorted(_TYPES)],
        )
        tables: dict[str, list[tuple[str, str]]] = {}
        for table, column, type_name, typmod in cursor.fetchall():
            if type_name in ("varchar", "bpchar") and 0 < typmod - 4 < _SHORTEST_ID:
                continue  # too short to hold an id (currency codes, statuses, kinds)
            tables.setdefault(table, []).append((column, _TYPES[type_name]))
    return tables


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def residue_scan(
    customer_ids: Iterable[uuid.UUID], indexes: Iterable[bytes], *, tables: Iterable[str] = ()
) -> ScanResult:
    """Search every table for the ids (uuid columns; text and JSON as text, with or without
    dashes) and the blind indexes (bytea columns). One sequential pass per table, all tables in
    one statement.

    `tables` restricts the scan (tests); by default every base table of the schema is read.
    Hits in tables declared RETAIN are reported as exceptions, every other hit is residue.
    """
    from cdp.profiles.resolution import raw_cursor

    ids = list(customer_ids)
    blobs = list({bytes(i) for i in indexes})
    patterns = [f"%{i}%" for i in ids] + [f"%{i.hex}%" for i in ids]
    allowed = exception_tables()
    wanted = set(tables)
    result = ScanResult()
    plans: list[tuple[str, list[str]]] = []
    selects: list[str] = []
    for table, columns in _columns().items():
        if wanted and table not in wanted:
            continue
        probes: list[tuple[str, str]] = []
        for column, data_type in columns:
            q = _quote(column)
            if data_type == "uuid":
                if ids:
                    probes.append((column, f"{q} = ANY(%(ids)s::uuid[])"))
            elif data_type == "bytea":
                if blobs:
                    probes.append((column, f"{q} = ANY(%(blobs)s::bytea[])"))
            elif ids:
                text = f"{q}::text" if data_type in _JSON_TYPES else q
                probes.append((column, f"{text} LIKE ANY(%(patterns)s::text[])"))
        if not probes:
            continue
        result.tables += 1
        result.columns += len(probes)
        counts = ", ".join(f"count(*) FILTER (WHERE {cond})" for _, cond in probes)
        source = _quote(table)  # an identifier from the catalogue, quoted; values are bound
        selects.append(f"SELECT {len(plans)}, ARRAY[{counts}]::bigint[] FROM {source}")  # noqa: S608
        plans.append((table, [column for column, _ in probes]))
    if not selects:
        return result
    # One statement, one round trip: every table is read once, in a single snapshot.
    with raw_cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(selects),
            {"ids": ids, "blobs": blobs, "patterns": patterns},
        )
        rows = cursor.fetchall()
    for position, counts in rows:
        table, columns = plans[position]
        for column, count in zip(columns, counts, strict=True):
            if not count:
                continue
            hit = {"table": table, "column": column, "rows": count}
            if table in allowed:
                result.exceptions.append({**hit, **allowed[table]})
            else:
                result.residue.append(hit)
    result.residue.sort(key=lambda h: (h["table"], h["column"]))
    result.exceptions.sort(key=lambda h: (h["table"], h["column"]))
    return result
