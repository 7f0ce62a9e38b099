"""Access and portability packages: JSON (schema below), CSV per table and an HTML report.

The subject's rows are found the way erasure finds them (`subjects.subject_relations`), so a
new model with a foreign key to the customer appears in the package without a change here.
Encrypted fields are decrypted; blind indexes are left out (keyed hashes mean nothing to the
subject); values under keys naming the items of 11 CCR 7024(d) (government ids, passwords,
security questions) are withheld. The zip is encrypted at rest under the request's own data
key and served through a signed link that expires (72 hours at most); each download is audited.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import re
import types
import uuid
import zipfile
from typing import Any

import orjson
from django.conf import settings
from django.core import signing
from django.db import models, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
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
from cdp.crypto.subject_keys import cached_key, subject_keys_load
from cdp.privacy.models import DataSubjectRequest, ExportPackage, RequestStatus
from cdp.privacy.recipients import recipients_all
from cdp.privacy.subjects import subject_customer_ids, subject_relations
from cdp.profiles.models import Customer

SCHEMA_VERSION = "cdp.privacy.export/v1"
MAX_LINK_HOURS = 72
LINK_SALT = "cdp.privacy.export-link"
WITHHELD = "[withheld: 11 CCR 7024(d)]"
_WITHHELD_KEYS = re.compile(
    r"ssn|socialsecurity|passport|driverslicen[cs]e|nationalid|taxid|governmentid|password|"
    r"passwd|securityquestion|securityanswer|pin$"
)
# A superset of _WITHHELD_KEYS on the raw JSON (any spelling): a hit triggers the exact walk.
_WITHHELD_SCAN = re.compile(
    rb"ssn|social|passport|licen[cs]e|national|tax|government|passw|security|\"pin\""
)
_FORMULA_START = frozenset("=+-@\t\r")
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


def _withhold(value: Any) -> Any:
    """Replace values under 11 CCR 7024(d) keys. A quick scan of the serialised value decides
    whether to walk it at all: almost no value holds such a key."""
    if not isinstance(value, dict | list):
        return value
    if not _WITHHELD_SCAN.search(orjson.dumps(value).lower()):
        return value
    return _withhold_walk(value)


def _withhold_walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                WITHHELD
                if _WITHHELD_KEYS.search(re.sub(r"[^a-z]", "", str(k).lower()))
                else _withhold_walk(v)
            )
            for k, v in value.items()
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


def _open(f: EncryptedField, holder: Any, value: Any) -> Any:
    """Decrypt one stored value: the field's own `open` (associated data, typed errors), except
    that JSON is parsed with orjson, which is what makes a 10,000-event export affordable."""
    sealed = value if isinstance(value, Sealed) else Sealed(bytes(value))
    if not isinstance(f, EncryptedJSONField):
        return f.open(holder, sealed)
    key = cached_key(getattr(holder, f.subject_field))
    if key is None:
        return f.open(holder, sealed)
    row = getattr(holder, f.model._meta.pk.attname)
    aad = key.aad_prefix(f.where) + aead.id_bytes(row)
    try:
        return orjson.loads(aead.open_sealed(key.cipher, sealed.blob, aad))
    except Exception:  # let the field raise its precise, typed error
        return f.open(holder, sealed)


def _rows(model: type[models.Model], lookup: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of `model` matching `lookup` as JSON-ready dicts, decrypted without building
    model instances (values_list plus the field's own open(), so it stays set-based)."""
    meta = model._meta
    blind = {f.field for f in personal_fields_of(model) if f.category == Category.BLIND_INDEX}
    fields = [f for f in meta.concrete_fields if f.name not in blind]
    names = [f.attname for f in fields]
    attnames = list(names)
    encrypted = [i for i, f in enumerate(fields) if isinstance(f, EncryptedField)]
    relations = [
        (i, (f.related_model, f.target_field.name))
        for i, f in enumerate(fields)
        if f.is_relation and f.related_model is not Customer
    ]
    keys = [f.name for f in fields]
    # JSON columns come back as text and are parsed with orjson (Django's loader is the
    # slowest step of a large export otherwise).
    json_columns = {i for i, f in enumerate(fields) if isinstance(f, models.JSONField)}
    queryset = model._base_manager.filter(**lookup).order_by(meta.pk.attname)
    if json_columns:
        queryset = queryset.annotate(
            **{
                f"_json_{fields[i].attname}": Cast(fields[i].attname, TextField())
                for i in json_columns
            }
        )
        names = [f"_json_{n}" if i in json_columns else n for i, n in enumerate(names)]
    rows = []
    related: dict[tuple[type[models.Model], str], set[Any]] = {}
    for values in queryset.values_list(*names):
        values = list(values)
        for i in json_columns:
            if values[i] is not None:
                values[i] = orjson.loads(values[i])
        if encrypted:
            holder = types.SimpleNamespace(**dict(zip(attnames, values, strict=True)))
            for i in encrypted:
                if values[i] is not None:
                    values[i] = _withhold(_open(fields[i], holder, values[i]))
        for i, target in relations:
            if values[i] is not None:
                related.setdefault(target, set()).add(values[i])
        rows.append(dict(zip(keys, map(_plain, values), strict=True)))
    # Related rows (a segment, a clustering run, a source): their label and whatever explains
    # the decision (rule, definition, algorithm), loaded once per model.
    for (rel_model, to_field), keys in related.items():
        objects = rel_model._base_manager.in_bulk(list(keys), field_name=to_field)
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
        for f in fields:
            if f.is_relation and f.related_model is rel_model and f.target_field.name == to_field:
                for row in rows:
                    if row[f.name] is not None:
                        row[f.name] = described.get(str(row[f.name]), row[f.name])
    return rows


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

    found = (
        request.customer_id is not None and Customer.objects.filter(pk=request.customer_id).exists()
    )
    ids = subject_customer_ids(request.customer_id) if found else []
    subject_keys_load(ids)
    records: dict[str, Any] = {}
    searched = ["profiles.Customer"]
    for relation in subject_relations():
        label = relation.label
        searched.append(f"{label}.{relation.field.name}")
        if not ids:
            continue
        rows = _rows(relation.model, {f"{relation.field.name}__in": ids})
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
    sources = sorted(
        {str(e["source"]["label"]) for e in events if isinstance(e.get("source"), dict)}
    )
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
        "profiles": _rows(Customer, {"id__in": ids}) if ids else [],
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


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(out)
    writer.writerow([csv_safe(c) for c in columns])
    for row in rows:
        writer.writerow([csv_safe(row.get(c)) for c in columns])
    return out.getvalue()


def _csv_files(document: dict[str, Any]) -> dict[str, str]:
    files = {"csv/profiles.csv": _csv(document["profiles"])}
    for label, section in document["records"].items():
        files[f"csv/{label.replace('.', '_').lower()}.csv"] = _csv(section["rows"])
    files["csv/consent_history.csv"] = _csv(
        [{k: v for k, v in e.items() if k != "receipt"} for e in document["consent_history"]]
    )
    files["csv/request_history.csv"] = _csv(document["request_history"])
    return files


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
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("package.json", orjson.dumps(document, option=orjson.OPT_INDENT_2))
        archive.writestr("schema.json", json.dumps(EXPORT_SCHEMA, indent=2))
        for name, text in _csv_files(document).items():
            archive.writestr(name, text)
        archive.writestr("report.html", export_html(document))
    return buffer.getvalue()


def _link_hours() -> int:
    return min(
        int(getattr(settings, "CDP_PRIVACY_EXPORT_LINK_HOURS", MAX_LINK_HOURS)), MAX_LINK_HOURS
    )


def dsr_execute_export(*, request: DataSubjectRequest, actor: str) -> ExportPackage:
    """Build the access/portability package, store it encrypted, complete the request."""
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
        package.save(force_insert=True)
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
