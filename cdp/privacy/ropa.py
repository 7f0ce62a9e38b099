"""The record of processing activities (GDPR Art. 30(1)), generated, never typed by hand:
purposes from consent, fields from the personal-data registry and the property classes, sources
from ingestion. Rendered as rows (section, item, detail) for the admin page, CSV and HTML.
"""

from __future__ import annotations

import csv
import io

from django.conf import settings
from django.utils import timezone
from django.utils.html import escape

from cdp.crypto.registry import Category, ErasureAction, erasure_policies, personal_fields
from cdp.privacy.export import csv_safe
from cdp.privacy.recipients import recipients_all

Row = tuple[str, str, str]

SECURITY_MEASURES = [
    "Personal data encrypted in the application before storage: AES-256-GCM with a data key "
    "per subject, wrapped by key-encryption keys held outside the database (Art. 32(1)(a))",
    "Exact lookups through keyed blind indexes (HMAC-SHA256), no plaintext search",
    "Erasure hard-deletes rows and destroys the subject's data key (crypto-shredding)",
    "Append-only, keyed hash-chained audit log and consent ledger with signed checkpoints",
    "Role-based access in the admin; decryption shown only to permitted roles and audited",
    "Scoped, expiring API tokens; write keys stored hashed; no personal data in logs",
]


def ropa_rows() -> list[Row]:
    from cdp.ingest.models import PropertyClass, PropertyClassKind, Source
    from consent.conf import controller_name
    from consent.models import Purpose

    rows: list[Row] = [
        ("controller", controller_name(), "Art. 30(1)(a)"),
        ("generated", timezone.now().isoformat(timespec="seconds"), ""),
    ]
    for p in Purpose.objects.order_by("code"):
        rows.append(
            (
                "purpose",
                f"{p.title} ({p.code} v{p.version})",
                f"{p.get_legal_basis_display()}; covers {', '.join(p.covers) or '-'}; "
                f"{'active' if p.is_active else 'inactive'}. {p.description}".strip(),
            )
        )
    rows.append(
        (
            "data subjects",
            "Customers and visitors of the controller's services",
            "by jurisdiction: GDPR (EU/EEA/UK), CCPA (California), other",
        )
    )
    for f in personal_fields():
        if f.category == Category.BLIND_INDEX:
            kind = "keyed blind index"
        else:
            kind = "encrypted" + (", sensitive" if f.sensitive else "")
        rows.append(
            ("personal data", f"{f.model}.{f.field}", f"{f.category}; {kind}. {f.description}")
        )
    for pc in PropertyClass.objects.order_by("scope", "key"):
        if pc.kind != PropertyClassKind.NON_PERSONAL:
            rows.append(("personal data", f"{pc.scope}: {pc.key}", pc.get_kind_display()))
    rows.append(
        (
            "personal data",
            "any other trait or property",
            "personal by default: encrypted in the original message",
        )
    )
    for s in Source.objects.order_by("name"):
        rows.append(("source", s.name, s.get_kind_display() + ("" if s.usable else " (disabled)")))
    for r in recipients_all("No recipient outside processors"):
        rows.append(("recipients", str(r), "Art. 30(1)(d)"))
    rows.append(
        (
            "transfers",
            str(getattr(settings, "CDP_PRIVACY_TRANSFERS", "None outside the EU/EEA")),
            "Art. 30(1)(e)",
        )
    )
    rows.append(
        (
            "retention",
            str(
                getattr(
                    settings,
                    "CDP_PRIVACY_RETENTION",
                    "While the customer relationship lasts; erased on request",
                )
            ),
            "Art. 30(1)(f)",
        )
    )
    for p in erasure_policies():
        if p.action == ErasureAction.RETAIN:
            rows.append(("retention", f"kept after erasure: {p.model}", f"{p.reason} ({p.basis})"))
    for measure in SECURITY_MEASURES:
        rows.append(("security measures", measure, "Art. 30(1)(g), Art. 32"))
    return rows


def ropa_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "detail"])
    for row in rows:
        writer.writerow([csv_safe(v) for v in row])
    return out.getvalue()


def ropa_html(rows: list[Row]) -> str:
    body = "".join(
        f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{escape(c)}</td></tr>" for a, b, c in rows
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Record of processing activities</title><style>body{font:14px sans-serif;"
        "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 6px;"
        "vertical-align:top}th{background:#eee}</style></head><body>"
        "<h1>Record of processing activities (GDPR Art. 30)</h1>"
        f"<table><tr><th>section</th><th>item</th><th>detail</th></tr>{body}</table>"
        "</body></html>"
    )
