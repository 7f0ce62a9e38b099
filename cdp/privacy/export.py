"""Access and portability packages: JSON (schema below), CSV per table and an HTML report.

The subject's rows are found the way erasure finds them (`subjects.subject_relations`), so a
new model with a foreign key to the customer appears in the package without a change here.
Encrypted fields are decrypted; blind indexes are left out (keyed hashes mean nothing to the
subject); values under keys naming the items of 11 CCR 7024(d) (government ids, passwords,
security questions) are withheld. The zip is encrypted at rest under the request's own data
key and served through a signed link that expires (72 hours at most); each download is audited.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import io
import itertools
import json
import operator
import re
import secrets
import types
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson
from django.conf import settings
from django.core import signing
from django.db import connection, models, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django.utils.html import escape

from cdp.api.errors import ApplicationError
from cdp.audit.services import audit_record
from cdp.crypto import aead
from cdp.crypto.fields import EncryptedField, EncryptedJSONField, Sealed
from cdp.crypto.registry import (
    Category,
    ErasureAction,
    erasure_policies,
    export_explainers,
    export_label_of,
    export_labels,
    personal_fields,
    personal_fields_of,
)
from cdp.crypto.subject_keys import cached_key, subject_keys_create, subject_keys_load
from cdp.memory import collector_paused
from cdp.privacy.models import DataSubjectRequest, ExportPackage, RequestStatus
from cdp.privacy.recipients import recipients_all
from cdp.privacy.subjects import subject_lookup, subject_relations
from cdp.profiles.models import Customer

SCHEMA_VERSION = "cdp.privacy.export/v1"
MAX_LINK_HOURS = 72
LINK_SALT = "cdp.privacy.export-link"
WITHHELD = "[withheld: 11 CCR 7024(d)]"
# Keys naming the items of 11 CCR 7024(d), matched after lower-casing and dropping all but a-z.
_WITHHELD_NAMES = (
    "ssn",
    "socialsecurity",
    "passport",
    "driverslicense",
    "driverslicence",
    "nationalid",
    "taxid",
    "governmentid",
    "password",
    "passwd",
    "securityquestion",
    "securityanswer",
)
_WITHHELD_KEYS = re.compile("|".join(_WITHHELD_NAMES) + "|pin$")
# The same names in serialised JSON reduced to letters and quotes (a key ends at its quote),
# looked for as plain substrings: a regex alternation read a column at a tenth of the speed.
_KEYS_FOUND = (*(n.encode() for n in _WITHHELD_NAMES), b'pin"')
_NOT_KEY_TEXT = bytes(sorted(set(range(256)) - set(b'abcdefghijklmnopqrstuvwxyz"')))
_FORMULA_START = frozenset("=+-@\t\r")
_CSV_SPECIAL = re.compile(r'[,"\r\n]')  # what makes csv.writer quote a cell
_FORMULA_AFTER_NUL = re.compile("\x00[=+\\-@\t\r]")  # a cell's start in a NUL-joined column
_EXPLAINING_FIELDS = ("rule", "definition", "conditions", "description", "algorithm", "params")

# The documented shape of package.json (also written into the zip as schema.json).
EXPORT_SCHEMA: dict[str, Any] = {
    "$id": SCHEMA_VERSION,
    "description": "Everything the platform holds on one data subject.",
    "properties": {
        "schema": "this version string",
        "generated_at": "ISO 8601 time the package was built",
        "request": "the request: id, reference, type, regime, received_at",
        "subject_found": "false when the platform holds nothing on the subject",
        "profiles": "the subject's profiles (merged ones included), personal fields decrypted",
        "records": "per model label: title, explanation, profiling flag, rows (every column; "
        "encrypted values decrypted, blind indexes left out, related rows as {id, label})",
        "consent_history": "every consent decision in the ledger, newest first, with receipt",
        "request_history": "the subject's data-subject requests",
        "article_15": "purposes, categories, recipients, retention, rights, sources, profiling",
        "explanations": "per explainer key: title and rows explaining automated decisions about "
        "the subject (e.g. each score with its model's purpose, inputs and logic)",
        "searched": "every model and table searched for the subject",
    },
}


def _may_withhold(raw: bytes) -> bool:
    """Whether serialised JSON may hold a key that `_withhold_walk` withholds, without parsing
    it: with everything but letters and quotes deleted, every key reads as the walk normalises
    it ("S.S.N", "pass_word", "userPin"), between quotes. A superset test: escapes and non-ASCII
    text could hide or make letters, so such values are always walked."""
    if not raw.isascii() or b"\\" in raw:
        return True
    letters = raw.lower().translate(None, _NOT_KEY_TEXT)
    return any(name in letters for name in _KEYS_FOUND)


@functools.lru_cache(maxsize=4096)
def _withheld_key(key: str) -> bool:
    return _WITHHELD_KEYS.search(re.sub(r"[^a-z]", "", key.lower())) is not None


def _withhold_walk(value: Any) -> Any:
    """`value` with every value under an 11 CCR 7024(d) key replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: WITHHELD if _withheld_key(str(k)) else _withhold_walk(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_withhold_walk(v) for v in value]
    return value


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict, list})


def _plain(value: Any) -> Any:
    if value.__class__ in _PLAIN_TYPES:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


# How a column is read. Values that JSON has no type for come back from PostgreSQL as the text
# they become in the package (parsing them into Python objects only to format them again cost
# a fifth of an export): ids as text, timestamps as `datetime.isoformat()` writes them in UTC
# (microseconds only when not zero).
_ISO_UTC = (
    "replace(to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), "
    "'.000000+', '+')"
)
_INTEGER_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
# Returned by psycopg as JSON-ready values.
_NATIVE_TYPES = _INTEGER_TYPES | frozenset(
    {
        "BooleanField",
        "FloatField",
        "CharField",
        "TextField",
        "SlugField",
    }
)


@dataclass(frozen=True)
class _Sealed:
    """An encrypted column, the position of its subject's id and of its row's id."""

    index: int
    field: EncryptedField
    subject: int
    row: int
    row_is_uuid: bool  # the row id column holds the 16 bytes of a UUID primary key
    json: bool


@dataclass(frozen=True)
class _Plan:
    """How one model's rows are read for the package (built once per model and field)."""

    sql: str
    keys: tuple[str, ...]  # output keys of the leading columns (extra columns follow)
    json: tuple[int, ...]  # JSON columns, read as text
    sealed: tuple[_Sealed, ...]
    convert: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (column, converters, expression)
    relations: tuple[tuple[int, type[models.Model], str], ...]  # (column, model, to_field)
    uuid_columns: frozenset[int]  # columns holding a UUID as text
    pk: str  # attname of the primary key
    sort: int | None  # the column to sort the rows by in Python (else the statement orders them)


_plans: dict[tuple[Any, ...], _Plan] = {}


def _plan(model: type[models.Model], by: models.Field) -> _Plan:
    """The statement and per-column steps for `model`'s rows selected by the `by` column: every
    concrete field but blind indexes, plus the primary key's 16 bytes when encrypted values
    are bound to a UUID row id."""
    meta = model._meta
    blind = tuple(
        sorted(f.field for f in personal_fields_of(model) if f.category == Category.BLIND_INDEX)
    )
    # Timestamps are formatted by the database only where Python would write them in UTC.
    utc = bool(settings.USE_TZ) and connection.timezone_name == "UTC"
    # A decimal's text is what str(Decimal) writes, with up to 6 places (0.0000001 is "1E-7").
    text_types = frozenset(
        {"UUIDField", "DecimalField", "DateTimeField"} if utc else {"UUIDField", "DecimalField"}
    )
    cache_key = (model, by.attname, blind, utc)
    plan = _plans.get(cache_key)
    if plan is not None:
        return plan
    q = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f.name not in blind]
    index = {f.attname: i for i, f in enumerate(fields)}
    columns, json, convert, relations, uuids = [], [], [], [], set()
    for i, f in enumerate(fields):
        column = q(f.column)
        target = f.target_field if f.is_relation else f
        kind = target.get_internal_type()
        converters = () if isinstance(f, EncryptedField) else f.get_db_converters(connection)
        if isinstance(f, EncryptedField):
            columns.append(column)
        elif isinstance(f, models.JSONField):
            columns.append(f"{column}::text")
            json.append(i)
        elif (
            converters
            or kind not in text_types | _NATIVE_TYPES
            or (kind == "DecimalField" and not 0 <= (target.decimal_places or 0) <= 6)
        ):
            columns.append(column)  # as the model reads it, then made plain
            convert.append((i, tuple(converters), f.get_col(meta.db_table)))
        elif kind == "UUIDField":
            columns.append(f"{column}::text")
            uuids.add(i)
        elif kind == "DateTimeField":
            columns.append(_ISO_UTC.format(column))
        elif kind == "DecimalField":
            columns.append(f"{column}::text")
        else:
            columns.append(column)
        if f.is_relation and f.related_model is not Customer:
            relations.append((i, f.related_model, f.target_field.name))
    sealed = []
    pk_is_uuid = meta.pk.get_internal_type() == "UUIDField"
    row = index[meta.pk.attname]
    if pk_is_uuid and any(isinstance(f, EncryptedField) for f in fields):
        row = len(columns)
        columns.append(f"uuid_send({q(meta.pk.column)})")
    for i, f in enumerate(fields):
        if isinstance(f, EncryptedField):
            sealed.append(
                _Sealed(
                    i,
                    f,
                    index[meta.get_field(f.subject_field).attname],
                    row,
                    pk_is_uuid,
                    isinstance(f, EncryptedJSONField),
                )
            )
    # Primary-key order. Ids and integers sort in Python as PostgreSQL sorts them (a UUID's
    # text in byte order), and cheaper: the server sorted the wide rows on disk past work_mem.
    pk_kind = meta.pk.get_internal_type()
    sort = index[meta.pk.attname] if pk_kind == "UUIDField" or pk_kind in _INTEGER_TYPES else None
    order = "" if sort is not None else f" ORDER BY {q(meta.pk.column)}"
    sql = (
        f"SELECT {', '.join(columns)} FROM {q(meta.db_table)} "  # noqa: S608
        f"WHERE {q(by.column)} = ANY(%s){order}"
    )
    plan = _plans[cache_key] = _Plan(
        sql,
        tuple(f.name for f in fields),
        tuple(json),
        tuple(sealed),
        tuple(convert),
        tuple(relations),
        frozenset(uuids),
        meta.pk.attname,
        sort,
    )
    return plan


def _json_column(
    rows: list[list[Any]],
    i: int,
    texts: list[Any],
    fallback: Callable[[list[Any]], Any] | None = None,
) -> None:
    """Set column `i` to the JSON values serialised in `texts` (str or bytes; None leaves the
    row alone), parsed with orjson, with 11 CCR 7024(d) items withheld: one withholding test
    over the whole column decides whether any value needs a closer look, as almost none does.
    A text orjson refuses goes to `fallback` (given the row), or raises without one."""
    present = [t for t in texts if t is not None]
    if not present:
        return
    if present[0].__class__ is str:
        walk = _may_withhold(",".join(present).encode())
    else:
        walk = _may_withhold(b",".join(present))
    for values, text in zip(rows, texts, strict=True):
        if text is None:
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            if fallback is None:
                raise
            value = fallback(values)
        if walk and value.__class__ in (dict, list):
            if _may_withhold(text.encode() if text.__class__ is str else text):
                value = _withhold_walk(value)
        values[i] = value


def _open_all(plan: _Plan, rows: list[list[Any]]) -> None:
    """Decrypt the plan's encrypted columns in place: the cached key, the associated data built
    from its cached prefix, one AES-GCM open, JSON parsed by orjson (see `_json_column`). Anything
    unexpected (no cached key, a failed tag, a value orjson refuses) goes through the field's
    own `open`, which raises its precise, typed error or returns what the model would."""
    for s in plan.sealed:
        f, i, si, ri, row_is_uuid = s.field, s.index, s.subject, s.row, s.row_is_uuid
        keys: dict[Any, tuple[Any, bytes] | None] = {}
        texts: list[Any] = []  # JSON plaintexts, parsed afterwards
        for values in rows:
            blob = values[i]
            if blob is None:
                texts.append(None)
                continue
            subject = values[si]
            if subject in keys:
                found = keys[subject]
            else:
                key = cached_key(_as_id(subject, si in plan.uuid_columns))
                found = keys[subject] = None if key is None else (key, key.aad_prefix(f.where))
            try:
                if found is None:
                    raise LookupError
                key, prefix = found
                row = values[ri]
                data = aead.open_sealed(
                    key.cipher, blob, prefix + (row if row_is_uuid else aead.id_bytes(row))
                )
                if not s.json:
                    values[i] = _plain(f.from_bytes(data))
            except Exception:
                values[i] = _open_checked(plan, s, values)
                data = None  # done by the checked path
            texts.append(data if s.json else None)
        if s.json:
            _json_column(rows, i, texts, functools.partial(_open_checked, plan, s))


def _as_id(value: Any, is_uuid: bool) -> Any:
    return uuid.UUID(value) if is_uuid and value is not None else value


def _open_checked(plan: _Plan, s: _Sealed, values: list[Any]) -> Any:
    """The field's own open() on a stand-in instance holding the typed subject and row ids."""
    f = s.field
    meta = f.model._meta
    subject = _as_id(values[s.subject], s.subject in plan.uuid_columns)
    row = values[s.row]
    row = uuid.UUID(bytes=row) if s.row_is_uuid else row
    holder = types.SimpleNamespace(
        **{meta.get_field(f.subject_field).attname: subject, plan.pk: row}
    )
    return _plain(_withhold_walk(f.open(holder, Sealed(bytes(values[s.index])))))


def _rows(
    model: type[models.Model], by: models.Field, ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    """Every row of `model` whose `by` column holds one of `ids`, as JSON-ready dicts, in
    primary-key order: one statement, decrypted without building model instances."""
    plan = _plan(model, by)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, [ids])
        rows = [list(values) for values in cursor.fetchall()]
    if not rows:
        return []
    if plan.sort is not None:
        rows.sort(key=operator.itemgetter(plan.sort))
    for i in plan.json:  # read as text: Django's loader was the slowest step of an export
        _json_column(rows, i, [values[i] for values in rows])
    if plan.sealed:
        _open_all(plan, rows)
    for i, converters, expression in plan.convert:
        for values in rows:
            value = values[i]
            for converter in converters:
                value = converter(value, expression, connection)
            values[i] = _plain(value)
    keys = plan.keys
    out = [dict(zip(keys, values, strict=False)) for values in rows]  # extra columns dropped
    # Related rows (a segment, a clustering run, a source): their label and whatever explains
    # the decision (rule, definition, algorithm), loaded once per model.
    for i, rel_model, to_field in plan.relations:
        name = keys[i]
        wanted = {values[i] for values in rows if values[i] is not None}
        if not wanted:
            continue
        objects = rel_model._base_manager.in_bulk(list(wanted), field_name=to_field)
        explain = [
            f.name
            for f in rel_model._meta.concrete_fields
            if f.name in _EXPLAINING_FIELDS and not isinstance(f, EncryptedField)
        ]
        described = {
            str(k): {
                "id": str(k),
                "label": str(o),
                **{n: _plain(getattr(o, n)) for n in explain},
            }
            for k, o in objects.items()
        }
        for row in out:
            value = row[name]
            if value is not None:
                row[name] = described.get(str(value), value)
    return out


def _article_15(records: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    from consent.models import Purpose

    categories = sorted(
        {
            str(f.category)
            for f in personal_fields()
            if f.category != Category.BLIND_INDEX
            and (f.model in records or f.model.startswith("profiles."))
        }
    )
    profiling = [
        {"model": label.model, "title": label.title, "logic": label.explanation}
        for label in export_labels()
        if label.profiling
    ]
    return {
        "a_purposes": [
            {
                "code": p.code,
                "title": p.title,
                "description": p.description,
                "legal_basis": p.get_legal_basis_display(),
                "covers": list(p.covers),
            }
            for p in Purpose.objects.filter(is_active=True)
        ],
        "b_categories": categories,
        "c_recipients": recipients_all("No recipient outside the controller and its processors."),
        "d_retention": {
            "default": getattr(
                settings,
                "CDP_PRIVACY_RETENTION",
                "Kept while the customer relationship lasts and erased on request.",
            ),
            "kept_after_erasure": [
                {"model": p.model, "reason": p.reason, "basis": p.basis}
                for p in erasure_policies()
                if p.action == ErasureAction.RETAIN
            ],
        },
        "e_rights": (
            "You may ask for rectification (Art. 16), erasure (Art. 17), restriction (Art. 18) "
            "and portability (Art. 20), and object to processing (Art. 21)."
        ),
        "f_complaint": "You may lodge a complaint with a supervisory authority (Art. 77).",
        "g_sources": sources,
        "h_automated_decisions": profiling,
    }


def export_build(*, request: DataSubjectRequest) -> dict[str, Any]:
    """The package's JSON document for the request's subject (see EXPORT_SCHEMA)."""
    from consent.models import Purpose
    from consent.receipts import consent_receipt
    from consent.selectors import consent_history

    ids = subject_lookup(request.customer_id)[0] if request.customer_id is not None else []
    found = bool(ids)
    subject_keys_load(ids)
    records: dict[str, Any] = {}
    searched = ["profiles.Customer"]
    for relation in subject_relations():
        label = relation.label
        searched.append(f"{label}.{relation.field.name}")
        if not ids:
            continue
        rows = _rows(relation.model, relation.field, ids)
        if not rows:
            continue
        section = records.setdefault(
            label,
            {
                "title": export_label_of(relation.model).title,
                "explanation": export_label_of(relation.model).explanation,
                "profiling": export_label_of(relation.model).profiling,
                "rows": [],
            },
        )
        seen = {r["id"] for r in section["rows"] if "id" in r}
        section["rows"].extend(r for r in rows if r.get("id") not in seen or "id" not in r)
    purposes = {p.code: p for p in Purpose.objects.all()}
    history = []
    for customer_id in ids:
        history.extend(
            {
                "seq": e.seq,
                "purpose": e.purpose_code,
                "granted": e.granted,
                "at": e.at.isoformat(),
                "channel": e.channel,
                "method": e.method,
                "receipt": consent_receipt(e, purposes.get(e.purpose_code)),
            }
            for e in consent_history(customer_id=customer_id)
        )
    history.sort(key=lambda e: -e["seq"])
    requests = [
        {
            "id": str(r.id),
            "reference": r.reference,
            "type": r.type,
            "status": r.status,
            "received_at": r.received_at.isoformat(),
            "due_at": r.due_at.isoformat(),
            "completed_at": r.completed_at.isoformat() if r.completed_at else None,
        }
        for r in DataSubjectRequest.objects.filter(customer_id__in=ids).order_by("received_at")
    ]
    explanations = {
        e.key: {"title": e.title, "rows": [row for cid in ids for row in e.explain(cid)]}
        for e in export_explainers()
    }
    events = records.get("ingest.Event", {}).get("rows", [])
    # Rows of one source share its description: distinct objects first, then their labels.
    described = {id(s): s for s in map(operator.methodcaller("get", "source"), events)}
    sources = sorted({str(s["label"]) for s in described.values() if isinstance(s, dict)})
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": timezone.now().isoformat(),
        "request": {
            "id": str(request.id),
            "reference": request.reference,
            "type": request.type,
            "regime": request.regime,
            "received_at": request.received_at.isoformat(),
        },
        "subject_found": found,
        "profiles": _rows(Customer, Customer._meta.pk, ids) if ids else [],
        "records": records,
        "consent_history": history,
        "request_history": requests,
        "article_15": _article_15(records, sources or ["provided by you or our systems"]),
        "explanations": {k: v for k, v in explanations.items() if v["rows"]},
        "searched": searched,
    }


def csv_safe(value: Any) -> str:
    """A cell that spreadsheet software will not run as a formula (OWASP CSV injection)."""
    if value is None:
        return ""
    if value.__class__ is str:
        text = value
    elif isinstance(value, dict | list):
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    else:
        text = str(value)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


_sorted_json = functools.partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)


def _json_texts(values: Sequence[Any]) -> list[str]:
    """`orjson.dumps(value, sorted keys)` of each value, by one call over the column (for the
    bench's 10,000 payloads 14 ms, against 40 ms for a call each): the values interleaved with a
    random token, the array split at it again. A value that held the token would add a piece;
    then each is serialised alone."""
    if not values:
        return []
    token = secrets.token_hex(16)
    array = orjson.dumps(
        list(itertools.chain.from_iterable(zip(values, repeat(token)))), option=orjson.OPT_SORT_KEYS
    )
    pieces = (array[1:-1].decode() + ",").split(f',"{token}",')
    if len(pieces) == len(values) + 1 and not pieces[-1]:
        return pieces[:-1]
    return [_sorted_json(v).decode() for v in values]


def _csv_cells(values: Sequence[Any]) -> list[str]:
    """`csv_safe` of each value of a column, then quoted as `csv.writer` quotes (excel dialect,
    minimal quoting). A column of one kind (text, JSON objects) is handled by C loops (map,
    join, split) rather than a Python step per cell: 160,000 cells for 10,000 events."""
    if len(values) > 1 and all(map(operator.is_, values, repeat(values[0]))):
        return _csv_cells(values[:1]) * len(values)  # one object throughout (a source)
    if all(map(isinstance, values, repeat(str))):
        cells = list(values)
    elif all(map(isinstance, values, repeat(dict | list))):
        cells = _json_texts(values)
    elif all(map(isinstance, values, repeat(int | float))):
        cells = list(map(str, values))
    else:
        cells = [v if v.__class__ is str else "" if v is None else csv_safe(v) for v in values]
    # Each cell behind a NUL: a cell's first character is the one after a NUL (a NUL inside a
    # cell can only make the tests below say yes where the exact step then finds nothing).
    joined = "\x00" + "\x00".join(cells)
    if _FORMULA_AFTER_NUL.search(joined):
        cells = ["'" + c if c[:1] in _FORMULA_START else c for c in cells]
        joined = "\x00" + "\x00".join(cells)
    if not any(special in joined for special in ',"\r\n'):
        return cells
    if joined.count("\x00") == len(cells) and (
        all(map(operator.contains, cells, repeat('"'))) or all(map(_CSV_SPECIAL.search, cells))
    ):
        # Every cell is quoted: once over the column, split again at the separators.
        return ('"' + joined[1:].replace('"', '""').replace("\x00", '"\x00"') + '"').split("\x00")
    return ['"' + c.replace('"', '""') + '"' if _CSV_SPECIAL.search(c) else c for c in cells]


def export_csv(rows: list[dict[str, Any]]) -> str:
    """A header of every key, in order of first appearance, and one line per row, byte for
    byte what `csv.writer` writes; built column by column (the csv module took 8 us a row)."""
    values: Iterable[Sequence[Any]] | None = None
    columns = list(rows[0]) if rows else []
    if len(columns) > 1 and set(map(len, rows)) == {len(columns)}:
        try:  # rows of one model: each holds exactly the first row's keys
            values = zip(*map(operator.itemgetter(*columns), rows), strict=True)
        except KeyError:
            values = None
    if values is None:
        columns = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
        if not columns:
            return "\r\n" * (len(rows) + 1)
        values = ([row.get(c) for row in rows] for c in columns)
    cells = [_csv_cells(column) for column in values]
    lines = [",".join(_csv_cells(columns))]
    lines += map(",".join, zip(*cells, strict=True))
    if len(columns) == 1:  # csv.writer quotes a line that would otherwise be empty
        lines = [line or '""' for line in lines]
    return "\r\n".join(lines) + "\r\n"


def _csv_files(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, text) of each CSV file, built one at a time."""
    yield "csv/profiles.csv", export_csv(document["profiles"])
    for label, section in document["records"].items():
        yield f"csv/{label.replace('.', '_').lower()}.csv", export_csv(section["rows"])
    yield (
        "csv/consent_history.csv",
        export_csv(
            [{k: v for k, v in e.items() if k != "receipt"} for e in document["consent_history"]]
        ),
    )
    yield "csv/request_history.csv", export_csv(document["request_history"])


HTML_ROWS = 50


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>None.</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(csv_safe(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows[:HTML_ROWS]
    )
    more = (
        f"<p>{len(rows) - HTML_ROWS} more rows are in the JSON and CSV files.</p>"
        if len(rows) > HTML_ROWS
        else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def export_html(document: dict[str, Any]) -> str:
    """A readable report with no external resources (inline style, no scripts, no links out)."""
    a15 = document["article_15"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Your data ({escape(document['request']['reference'])})</title>",
        "<style>body{font:14px sans-serif;margin:2em;max-width:75em}table{border-collapse:"
        "collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;font-size:12px;"
        "vertical-align:top}th{background:#eee}</style></head><body>",
        f"<h1>Your data: request {escape(document['request']['reference'])}</h1>",
        f"<p>Generated {escape(document['generated_at'])}.</p>",
    ]
    if not document["subject_found"]:
        parts.append("<p><strong>We hold no personal data about you.</strong></p>")
    parts.append("<h2>Information under GDPR Art. 15(1)</h2><dl>")
    parts.append("<dt>(a) Purposes of processing</dt><dd><ul>")
    parts += [
        f"<li>{escape(p['title'])} ({escape(p['legal_basis'])}): {escape(p['description'])}</li>"
        for p in a15["a_purposes"]
    ]
    parts.append("</ul></dd>")
    parts.append(
        f"<dt>(b) Categories of personal data</dt><dd>{escape(', '.join(a15['b_categories']))}</dd>"
    )
    parts.append(f"<dt>(c) Recipients</dt><dd>{escape('; '.join(a15['c_recipients']))}</dd>")
    parts.append(f"<dt>(d) Retention</dt><dd>{escape(a15['d_retention']['default'])}<ul>")
    parts += [
        f"<li>{escape(k['model'])}: {escape(k['reason'])} ({escape(k['basis'])})</li>"
        for k in a15["d_retention"]["kept_after_erasure"]
    ]
    parts.append("</ul></dd>")
    parts.append(f"<dt>(e) Your rights</dt><dd>{escape(a15['e_rights'])}</dd>")
    parts.append(f"<dt>(f) Complaints</dt><dd>{escape(a15['f_complaint'])}</dd>")
    parts.append(f"<dt>(g) Sources</dt><dd>{escape(', '.join(a15['g_sources']))}</dd>")
    parts.append("<dt>(h) Automated decisions and profiling</dt><dd><ul>")
    parts += [
        f"<li>{escape(p['title'])}: {escape(p['logic'])}</li>" for p in a15["h_automated_decisions"]
    ] or ["<li>None.</li>"]
    parts.append("</ul></dd></dl>")
    parts.append("<h2>Profile</h2>" + _table(document["profiles"]))
    for section in document["records"].values():
        parts.append(f"<h2>{escape(section['title'])} ({len(section['rows'])})</h2>")
        if section["explanation"]:
            parts.append(f"<p>How this was decided: {escape(section['explanation'])}</p>")
        parts.append(_table(section["rows"]))
    for section in document.get("explanations", {}).values():
        parts.append(f"<h2>{escape(section['title'])}</h2>" + _table(section["rows"]))
    parts.append("<h2>Consent history</h2>")
    parts.append(
        _table(
            [{k: v for k, v in e.items() if k != "receipt"} for e in document["consent_history"]]
        )
    )
    parts.append("<h2>Your requests</h2>" + _table(document["request_history"]))
    parts.append("<h2>What was searched</h2><p>" + escape(", ".join(document["searched"])) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)


def export_zip(document: dict[str, Any]) -> bytes:
    """The package as a zip (deflate level 1: level 6 took three times as long for a fifth
    less). One thread writes the files in order while this one builds the next: deflate and
    CRC release the GIL, so compressing package.json overlaps with writing the CSV files."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-zip") as writer,
    ):
        written = [
            writer.submit(
                archive.writestr, "package.json", orjson.dumps(document, option=orjson.OPT_INDENT_2)
            ),
            writer.submit(archive.writestr, "schema.json", json.dumps(EXPORT_SCHEMA, indent=2)),
        ]
        for name, text in _csv_files(document):
            written.append(writer.submit(archive.writestr, name, text))
        written.append(writer.submit(archive.writestr, "report.html", export_html(document)))
        for done in written:
            done.result()  # the first failure, raised here
    return buffer.getvalue()


def _link_hours() -> int:
    return min(
        int(getattr(settings, "CDP_PRIVACY_EXPORT_LINK_HOURS", MAX_LINK_HOURS)), MAX_LINK_HOURS
    )


def _package_insert(package: ExportPackage) -> None:
    """`package.save(force_insert=True)`, through Django's own INSERT (defaults, auto_now_add,
    the content sealed by its field's pre_save) on a cursor that binds parameters server-side:
    through Django's cursor the archive went as hex inside the statement's text, twice its size,
    for the server to parse back (40 of the 60 ms of storing a 10,000-event package)."""
    from cdp.db import raw_cursor

    query = InsertQuery(ExportPackage)
    query.insert_values(ExportPackage._meta.concrete_fields, [package])
    with raw_cursor() as cursor:
        for sql, params in query.get_compiler(connection=connection).as_sql():
            cursor.execute(sql, params)
    package._state.adding = False
    package._state.db = connection.alias


def dsr_execute_export(*, request: DataSubjectRequest, actor: str) -> ExportPackage:
    """Build the access/portability package, store it encrypted, complete the request."""
    with collector_paused():
        document = export_build(request=request)
        content = export_zip(document)
    now = timezone.now()
    with transaction.atomic():
        package = ExportPackage(
            request=request,
            content=content,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            expires_at=now + dt.timedelta(hours=_link_hours()),
        )
        subject_keys_create([request.id])  # the package's key: one INSERT instead of three
        _package_insert(package)
        counts = {label: len(s["rows"]) for label, s in document["records"].items()}
        request.status = RequestStatus.COMPLETED
        request.completed_at = now
        request.subject_found = document["subject_found"]
        request.report = {
            "subject_found": document["subject_found"],
            "package": str(package.id),
            "rows": counts,
            "consent_decisions": len(document["consent_history"]),
            **(
                {}
                if document["subject_found"]
                else {"message": "the platform holds no data on this subject"}
            ),
        }
        request.save(update_fields=["status", "completed_at", "subject_found", "report"])
        audit_record(
            actor=actor,
            action="privacy.export_build",
            object_type="privacy.request",
            object_id=str(request.id),
            details={"package": str(package.id), "bytes": package.size, "rows": counts},
        )
    return package


def export_link_token(package: ExportPackage) -> str:
    return signing.TimestampSigner(salt=LINK_SALT).sign(str(package.id))


def export_package_for_token(token: str) -> ExportPackage:
    """The package a download link names; refuses a forged, expired or deleted one."""
    try:
        package_id = signing.TimestampSigner(salt=LINK_SALT).unsign(
            token, max_age=dt.timedelta(hours=_link_hours())
        )
    except signing.SignatureExpired:
        raise ApplicationError(
            "export_link_expired", "this download link has expired", status=410
        ) from None
    except signing.BadSignature:
        raise ApplicationError(
            "export_link_invalid", "this download link is not valid", status=404
        ) from None
    package = ExportPackage.objects.filter(pk=package_id).first()
    if package is None or package.expires_at <= timezone.now():
        raise ApplicationError(
            "export_link_expired", "this package is no longer available", status=410
        )
    return package


def export_package_download(*, package: ExportPackage, actor: str) -> bytes:
    """The decrypted zip, with the download recorded in the audit log first (no fail-open)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="privacy.export_download",
            object_type="privacy.exportpackage",
            object_id=str(package.id),
            details={"request": str(package.request_id), "bytes": package.size},
        )
        ExportPackage.objects.filter(pk=package.pk).update(downloads=models.F("downloads") + 1)
        return bytes(package.content)


def export_files(content: bytes) -> dict[str, bytes]:
    """The files of a package zip (tests, the admin)."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
