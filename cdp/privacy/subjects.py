"""Where a data subject's rows are: discovered from Django's model graph, not listed by hand.

Every concrete model (auto-created many-to-many tables included) with a ForeignKey or OneToOne
to `profiles.Customer` holds subject data; apps declare exceptions through
`cdp.crypto.registry.erasure_policy`, so a new model is covered without importing this package.
The residue scan goes further and reads every column of every table of the schema that could
hold an id or a blind index, whether Django knows the table or not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connection, models, transaction

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


# The tree's ids go on as one array: joined to the CTE instead, the planner guessed hundreds of
# rows and read both tables in full (5 ms at 2,000 customers).
_LOOKUP = """
WITH RECURSIVE tree(id) AS (
    SELECT {pk} FROM {customer} WHERE {pk} = ANY(%(ids)s::uuid[])
    UNION SELECT c.{pk} FROM {customer} c JOIN tree t ON c.{merged} = t.id
), found(ids) AS (SELECT array_agg(id) FROM tree)
SELECT NULL, c.{pk}, c.{email}, c.{phone} FROM {customer} c
    WHERE c.{pk} = ANY((SELECT ids FROM found)::uuid[])
UNION ALL SELECT i.{kind}, NULL, i.{index}, NULL FROM {identity} i
    WHERE i.{owner} = ANY((SELECT ids FROM found)::uuid[])
"""


def subject_lookup(
    *customer_ids: uuid.UUID,
) -> tuple[list[uuid.UUID], set[tuple[str, bytes]]]:
    """The customers, every profile merged into them (directly or through others), and the
    (kind, blind index) of every identifier those profiles hold: identities and the profile
    indexes. One statement, so both come from one snapshot (an erasure's first read). Unknown
    ids contribute nothing."""
    from cdp.db import raw_cursor

    q = connection.ops.quote_name
    c, i = Customer._meta, Identity._meta
    sql = _LOOKUP.format(
        customer=q(c.db_table),
        pk=q(c.pk.column),
        merged=q(c.get_field("merged_into").column),
        email=q(c.get_field("email_index").column),
        phone=q(c.get_field("phone_index").column),
        identity=q(i.db_table),
        kind=q(i.get_field("kind").column),
        index=q(i.get_field("value_index").column),
        owner=q(i.get_field("customer").column),
    )
    with raw_cursor() as cursor:
        cursor.execute(sql, {"ids": list(customer_ids)})
        rows = cursor.fetchall()
    ids, identifiers = [], set()
    for kind, customer_id, index, phone_index in rows:
        if customer_id is None:  # an identity
            identifiers.add((kind, bytes(index)))
            continue
        ids.append(customer_id)
        if index:
            identifiers.add(("email", bytes(index)))
        if phone_index:
            identifiers.add(("phone", bytes(phone_index)))
    return sorted(ids), identifiers


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
_TYPES = {  # built-in type OIDs (fixed in pg_type.dat): how the scan searches the type
    2950: "uuid",
    17: "bytea",
    25: "text",
    1043: "text",  # varchar
    1042: "text",  # bpchar
    114: "json",
    3802: "json",  # jsonb
}
_CHAR_TYPES = {1043, 1042}
_JSON_TYPES = {"json"}
_EXACT_TYPES = {"uuid", "bytea"}


@dataclass(frozen=True)
class ScanColumn:
    """A column that can hold an id or a blind index; `indexed` when a valid btree or hash
    index leads with it, so an equality probe is answered from the index."""

    name: str
    kind: str  # uuid, bytea, text or json
    indexed: bool

    @property
    def probe(self) -> bool:
        return self.indexed and self.kind in _EXACT_TYPES


@dataclass(frozen=True)
class ScanTable:
    """A base table (a partitioned one through its parent): its columns, its size in pages
    and how many rows a page holds, as the planner would estimate them."""

    name: str
    columns: tuple[ScanColumn, ...]
    pages: int
    density: float

    @property
    def rows(self) -> int:
        """Estimated rows: the planner's density times the current size. Dead rows count:
        a full read pays for them."""
        return int(self.density * self.pages)


@dataclass
class ScanResult:
    tables: int = 0
    columns: int = 0
    probed: int = 0
    read: int = 0
    empty: int = 0
    full_read_max_rows: int | None = None
    residue: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No residue among the columns searched (deferred ones are the sweep's to judge)."""
        return not self.residue

    @property
    def deferred_columns(self) -> int:
        return sum(len(d["columns"]) for d in self.deferred)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tables_scanned": self.tables,
            "columns_scanned": self.columns,
            "clean": self.clean,
            "residue": self.residue,
            "exceptions": self.exceptions,
        }
        if self.full_read_max_rows is not None:
            out.update(
                method="targeted",
                full_read_max_rows=self.full_read_max_rows,
                columns_probed=self.probed,
                tables_read=self.read,
                tables_empty=self.empty,
                deferred_columns=self.deferred_columns,
                deferred=self.deferred,
                deferred_to="residue sweep" if self.deferred else None,
            )
        return out


# One row per column. CTEs are materialised and types compared by their fixed OIDs: the
# catalogue may have no statistics (autovacuum off) and the planner then chose a sequential
# read of pg_type per table (10 ms against about 2 ms for this form).
_CATALOG = """
WITH rel AS MATERIALIZED (
    SELECT c.oid, c.relname, c.relpages, c.reltuples,
        CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) ELSE (
            SELECT coalesce(sum(pg_relation_size(tree.relid)), 0)
            FROM pg_partition_tree(c.oid) AS tree WHERE tree.isleaf
        ) END AS size
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
), heads AS MATERIALIZED (
    SELECT DISTINCT i.indrelid, i.indkey[0] AS attnum
    FROM pg_index i JOIN rel r ON r.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indisvalid AND i.indpred IS NULL
    AND ic.relam IN (SELECT oid FROM pg_am WHERE amname IN ('btree', 'hash'))
)
SELECT r.relname, r.relpages, r.reltuples, r.size, current_setting('block_size')::int,
    a.attname, a.atttypid::int, a.atttypmod, a.attlen, h.attnum IS NOT NULL
FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid
LEFT JOIN heads h ON h.indrelid = r.oid AND h.attnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY r.relname, a.attnum
"""


def _density(pages: int, tuples: float, block: int, lengths: list[int]) -> float:
    """Rows per page as the planner estimates them: reltuples / relpages once analysed; else
    from the column widths (the planner's 32 bytes for a variable-width value)."""
    if pages > 0 and tuples >= 0:
        return tuples / pages
    return block / (24 + sum(n if n > 0 else 32 for n in lengths))


# The catalogue read costs a few milliseconds, as much as the probes of an erasure: it is kept
# per process and database for CATALOG_SECONDS, and read again at once when the schema's
# relations change (a table or an index created, dropped, altered: their pg_class rows are new
# or rewritten, so the count, the highest oid or the xmin sum moves). A renamed or dropped
# column is caught when the scan fails (`residue_scan` reads the catalogue again). Sizes are
# always read fresh, with the fingerprint, in one cheap query.
CATALOG_SECONDS = 60.0
_SIZES = """
SELECT c.relname, c.oid::int8, c.xmin::text::int8,
    CASE c.relkind WHEN 'r' THEN pg_relation_size(c.oid) WHEN 'p' THEN (
        SELECT coalesce(sum(pg_relation_size(tree.relid)), 0)
        FROM pg_partition_tree(c.oid) AS tree WHERE tree.isleaf
    ) END,
    current_setting('block_size')::int
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()
"""
_catalog_cache: dict[str, tuple[float, tuple[int, int, int], list[ScanTable]]] = {}


def scan_catalog_cached() -> tuple[list[ScanTable], bool]:
    """`scan_catalog()`, from the process cache when the schema has not changed, with sizes
    read now; the flag says whether the columns came from the cache."""
    with connection.cursor() as cursor:
        cursor.execute(_SIZES)
        relations = cursor.fetchall()
    fingerprint = (
        len(relations),
        max((r[1] for r in relations), default=0),
        sum(r[2] for r in relations),
    )
    key = f"{connection.alias}:{connection.settings_dict['NAME']}"
    cached = _catalog_cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[1] == fingerprint and now - cached[0] < CATALOG_SECONDS:
        pages = {r[0]: int(r[3] or 0) // r[4] for r in relations}
        return [replace(t, pages=pages.get(t.name, t.pages)) for t in cached[2]], True
    tables = scan_catalog()
    _catalog_cache[key] = (now, fingerprint, tables)
    return tables, False


def scan_catalog_forget() -> None:
    """Drop the cached catalogue (after a failed scan, or in tests that alter the schema)."""
    _catalog_cache.clear()


def scan_catalog() -> list[ScanTable]:
    """Every table of the current schema with a column that could hold an id or a blind index:
    the columns, whether an index answers an equality probe on each, and the estimated rows.

    Read from pg_catalog (information_schema's views cost a quarter of a second here).
    Partitioned tables are read through their parent, never partition by partition.
    """
    with connection.cursor() as cursor:
        cursor.execute(_CATALOG)
        rows = cursor.fetchall()
    tables: dict[str, tuple[list[ScanColumn], list[int], tuple[int, float, int, int]]] = {}
    for table, pages, tuples, size, block, name, type_oid, typmod, length, indexed in rows:
        columns, lengths, _ = tables.setdefault(table, ([], [], (pages, tuples, int(size), block)))
        lengths.append(length)
        kind = _TYPES.get(type_oid)
        if kind is None:
            continue
        if type_oid in _CHAR_TYPES and 0 < typmod - 4 < _SHORTEST_ID:
            continue  # too short to hold an id (currency codes, statuses, kinds)
        columns.append(ScanColumn(name, kind, bool(indexed)))
    return [
        ScanTable(name, tuple(columns), size // block, _density(pages, tuples, block, lengths))
        for name, (columns, lengths, (pages, tuples, size, block)) in tables.items()
        if columns
    ]


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _condition(column: ScanColumn) -> str:
    q = _quote(column.name)
    if column.kind == "uuid":
        return f"{q} = ANY(%(ids)s::uuid[])"
    if column.kind == "bytea":
        return f"{q} = ANY(%(blobs)s::bytea[])"
    text = f"{q}::text" if column.kind in _JSON_TYPES else q
    return f"{text} LIKE ANY(%(patterns)s::text[])"


# Transaction-local: read the settings, then turn sequential reads off, and with them what
# their disabled cost would otherwise switch on (parallel workers, JIT compilation: 0.9 s).
_PLANNER_OFF = """
SELECT current_setting('enable_seqscan'), current_setting('max_parallel_workers_per_gather'),
    current_setting('jit'), set_config('enable_seqscan', 'off', true),
    set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)
"""
_PLANNER_RESTORE = """
SELECT set_config('enable_seqscan', %s, true),
    set_config('max_parallel_workers_per_gather', %s, true), set_config('jit', %s, true)
"""


def residue_scan(
    customer_ids: Iterable[uuid.UUID],
    indexes: Iterable[bytes],
    *,
    tables: Iterable[str] = (),
    full_read_max_rows: int | None = None,
) -> ScanResult:
    """Search the tables for the ids (uuid columns; text and JSON as text, with or without
    dashes) and the blind indexes (bytea columns), in one statement (one round trip, one
    snapshot).

    Without `full_read_max_rows` every table is read in full (one pass per table): the complete
    search, whose cost grows with the whole database. With it (the erasure's targeted scan),
    a table estimated at more rows than that is not read: its uuid and bytea columns that lead
    an index are probed through the index, and its other columns (unindexed ids, text, JSON)
    are listed in `deferred`, for the residue sweep (`cdp.privacy.sweep`) that reads each such
    table once for every erasure since the last sweep. Smaller tables are read in full.

    `tables` restricts the scan (tests). Hits in tables declared RETAIN are reported as
    exceptions, every other hit is residue.
    """
    import psycopg

    ids = list(customer_ids)
    blobs = list({bytes(i) for i in indexes})
    catalog, cached = scan_catalog_cached()
    if not cached:
        return _scan(catalog, ids, blobs, set(tables), full_read_max_rows)
    try:
        with transaction.atomic():  # a savepoint: a stale catalogue must not abort the caller
            return _scan(catalog, ids, blobs, set(tables), full_read_max_rows)
    except (DatabaseError, psycopg.Error):
        scan_catalog_forget()  # a column or table went since the catalogue was read
        return _scan(scan_catalog(), ids, blobs, set(tables), full_read_max_rows)


def _scan(
    catalog: list[ScanTable],
    ids: list[uuid.UUID],
    blobs: list[bytes],
    wanted: set[str],
    full_read_max_rows: int | None,
) -> ScanResult:
    from cdp.db import raw_cursor

    patterns = [f"%{i}%" for i in ids] + [f"%{i.hex}%" for i in ids]
    allowed = exception_tables()
    result = ScanResult(full_read_max_rows=full_read_max_rows)
    plans: list[tuple[str, list[str]]] = []
    selects: list[str] = []

    def searchable(column: ScanColumn) -> bool:
        return bool(blobs) if column.kind == "bytea" else bool(ids)

    for table in catalog:
        if wanted and table.name not in wanted:
            continue
        columns = [c for c in table.columns if searchable(c)]
        if not columns:
            continue
        if table.pages == 0:  # no page, no row: nothing to read (sizes are read fresh)
            result.tables += 1
            result.columns += len(columns)
            result.empty += 1
            continue
        source = _quote(table.name)  # an identifier from the catalogue, quoted; values are bound
        position = len(plans)
        if full_read_max_rows is None or table.rows <= full_read_max_rows:
            counts = ", ".join(f"count(*) FILTER (WHERE {_condition(c)})" for c in columns)
            selects.append(f"SELECT {position}, ARRAY[{counts}]::bigint[] FROM {source}")  # noqa: S608
            result.read += 1
        else:
            probed = [c for c in columns if c.probe]
            rest = [c.name for c in columns if not c.probe]
            if rest:
                result.deferred.append(
                    {"table": table.name, "columns": rest, "rows_estimated": table.rows}
                )
            if not probed:
                continue
            columns = probed
            counts = ", ".join(
                f"(SELECT count(*) FROM {source} WHERE {_condition(c)})"  # noqa: S608
                for c in columns
            )
            selects.append(f"SELECT {position}, ARRAY[{counts}]::bigint[]")
            result.probed += len(columns)
        result.tables += 1
        result.columns += len(columns)
        plans.append((table.name, [c.name for c in columns]))
    if not selects:
        return result
    # Probes go by index even where the planner expects most of the table to match (a column
    # with few distinct values, such as a source id): sequential reads are off for the
    # statement (restored after it; the small tables read in full have no other path and are
    # still read).
    with transaction.atomic(savepoint=False), raw_cursor() as cursor:
        cursor.execute(_PLANNER_OFF)
        previous = cursor.fetchone()[:3]
        cursor.execute(
            " UNION ALL ".join(selects),
            {"ids": ids, "blobs": blobs, "patterns": patterns},
        )
        rows = cursor.fetchall()
        cursor.execute(_PLANNER_RESTORE, previous)
    for position, counts in rows:
        table, names = plans[position]
        for column, count in zip(names, counts, strict=True):
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
