"""Bulk consent changes from a CSV file: per-row reasons for bad rows, good rows applied.

Columns (header row required, names case-insensitive):
  identifier       e-mail, user id or customer id (UUID)
  identifier_type  optional: email, user_id or customer_id; inferred when absent (a UUID is a
                   customer id, a value with "@" an e-mail, anything else a user id)
  purpose          purpose code
  state            granted / withdrawn (also true/false, yes/no, 1/0, opt-in/opt-out)
  timestamp        ISO 8601 (a time without zone is taken as UTC)
  channel          optional: admin, api, import or event (default import)
  notice_version   optional: the notice version the decision was given to
  method           optional: how it was collected (default csv)

Identifiers are resolved set-based (one query per identifier kind per chunk) through blind
indexes. Reasons name the row (the file's line number, header = 1), the column and the problem,
never the value. Each chunk of good rows is one `consent_record_many` batch.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cdp.audit.services import audit_record
from cdp.crypto.errors import NormalizationError
from cdp.profiles.models import Customer, CustomerStatus, Identity, IdentityKind
from cdp.profiles.services import identifier_index
from consent.models import Channel, Purpose, PurposeVersion
from consent.services import METHOD_RE, ConsentDecision, consent_record_many

CHUNK_ROWS = 5_000
REQUIRED = ("identifier", "purpose", "state", "timestamp")
OPTIONAL = ("identifier_type", "channel", "notice_version", "method")
IMPORT_CHANNELS = {Channel.ADMIN, Channel.API, Channel.IMPORT, Channel.EVENT}
_TRUE = {"granted", "grant", "true", "yes", "y", "1", "opt-in", "opt_in", "optin", "given"}
_FALSE = {"withdrawn", "withdraw", "false", "no", "n", "0", "opt-out", "opt_out", "optout"}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    applied: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "applied": self.applied,
            "rejected": self.rejected,
            "errors": [e.__dict__ for e in self.errors],
        }


@dataclass
class _Row:
    number: int
    kind: str
    identifier: str
    purpose: str
    granted: bool
    at: dt.datetime
    channel: str
    notice_version: int | None
    method: str


def _text_stream(file: IO[Any] | Iterable[str]) -> Iterable[str]:
    if isinstance(file, io.TextIOBase):
        return file
    if hasattr(file, "read"):
        return io.TextIOWrapper(file, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
    return file


def _kind_of(value: str, declared: str) -> str | None:
    if declared:
        kinds = {"email": "email", "user_id": "user_id", "customer_id": "customer_id"}
        return kinds.get(declared.strip().lower())
    try:
        uuid.UUID(value)
        return "customer_id"
    except ValueError:
        return "email" if "@" in value else "user_id"


def _parse(number: int, raw: dict[str, str], errors: list[RowError]) -> _Row | None:
    before = len(errors)
    values = {k: (raw.get(k) or "").strip() for k in (*REQUIRED, *OPTIONAL)}
    for column in REQUIRED:
        if not values[column]:
            errors.append(RowError(number, column, "missing value"))
    kind = _kind_of(values["identifier"], values["identifier_type"])
    if kind is None:
        errors.append(RowError(number, "identifier_type", "must be email, user_id or customer_id"))
    state = values["state"].lower()
    if values["state"] and state not in _TRUE | _FALSE:
        errors.append(RowError(number, "state", "must be granted or withdrawn"))
    at = None
    if values["timestamp"]:
        try:
            at = parse_datetime(values["timestamp"])
        except ValueError:
            at = None
        if at is None:
            try:
                at = dt.datetime.combine(dt.date.fromisoformat(values["timestamp"]), dt.time())
            except ValueError:
                errors.append(RowError(number, "timestamp", "not an ISO 8601 date or time"))
        if at is not None:
            if timezone.is_naive(at):
                at = at.replace(tzinfo=dt.UTC)
            if at > timezone.now():
                errors.append(RowError(number, "timestamp", "in the future"))
    channel = values["channel"].lower() or Channel.IMPORT
    if channel not in IMPORT_CHANNELS:
        errors.append(RowError(number, "channel", "must be admin, api, import or event"))
    notice_version = None
    if values["notice_version"]:
        try:
            notice_version = int(values["notice_version"])
        except ValueError:
            errors.append(RowError(number, "notice_version", "not a whole number"))
    if values["method"] and not METHOD_RE.match(values["method"]):
        errors.append(RowError(number, "method", "1-64 letters, digits or . _ : -"))
    if len(errors) > before or at is None or kind is None:
        return None
    return _Row(
        number=number,
        kind=kind,
        identifier=values["identifier"],
        purpose=values["purpose"],
        granted=state in _TRUE,
        at=at,
        channel=channel,
        notice_version=notice_version,
        method=values["method"] or "csv",
    )


def _chunks(reader: Iterator[dict[str, str]], size: int) -> Iterator[list[tuple[int, dict]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    for raw in reader:
        chunk.append((reader.line_num, raw))  # type: ignore[attr-defined]
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _resolve(rows: list[_Row], errors: list[RowError]) -> dict[int, Customer]:
    """Customers for the rows, by blind index or id: one query per identifier kind."""
    wanted: dict[int, tuple[str, Any]] = {}
    for row in rows:
        if row.kind == "customer_id":
            wanted[row.number] = ("customer_id", uuid.UUID(row.identifier))
            continue
        kind = IdentityKind.EMAIL if row.kind == "email" else IdentityKind.USER_ID
        try:
            _, index = identifier_index(kind, row.identifier)
        except NormalizationError:
            errors.append(RowError(row.number, "identifier", f"not a valid {row.kind}"))
            continue
        wanted[row.number] = (kind, index)
    by_index: dict[tuple[str, bytes], uuid.UUID] = {}
    for kind in (IdentityKind.EMAIL, IdentityKind.USER_ID):
        indexes = [v for k, v in wanted.values() if k == kind]
        if indexes:
            for customer_id, index in Identity.objects.filter(
                kind=kind, value_index__in=indexes
            ).values_list("customer_id", "value_index"):
                by_index[(kind, bytes(index))] = customer_id
    ids = {
        number: (value if kind == "customer_id" else by_index.get((kind, value)))
        for number, (kind, value) in wanted.items()
    }
    customers = Customer.objects.only("id", "status", "jurisdiction").in_bulk(
        [i for i in ids.values() if i is not None]
    )
    found: dict[int, Customer] = {}
    for number, customer_id in ids.items():
        customer = customers.get(customer_id) if customer_id else None
        if customer is None:
            errors.append(RowError(number, "identifier", "no customer with this identifier"))
        elif customer.status not in (CustomerStatus.ACTIVE, CustomerStatus.RESTRICTED):
            errors.append(RowError(number, "identifier", f"customer is {customer.status}"))
        else:
            found[number] = customer
    return found


def consent_import_csv(*, file: IO[Any] | Iterable[str], actor: str) -> ImportReport:
    """Apply a consent CSV: good rows recorded (channel as given, default import), bad rows
    reported with row, column and reason. Each chunk commits on its own, so a large file's
    earlier chunks stay applied if a later one fails. One audit entry for the import."""
    report = ImportReport()
    reader = csv.DictReader(_text_stream(file))
    header = {(name or "").strip().lower() for name in reader.fieldnames or []}
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        report.errors.append(RowError(1, ", ".join(missing), "missing column"))
        return report
    reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames or []]
    purposes = {p.code: p for p in Purpose.objects.filter(is_active=True)}
    versions = set(PurposeVersion.objects.values_list("purpose__code", "version"))
    for chunk in _chunks(reader, CHUNK_ROWS):
        report.rows += len(chunk)
        errors: list[RowError] = []
        rows = [row for number, raw in chunk if (row := _parse(number, raw, errors))]
        good = []
        for row in rows:
            if row.purpose not in purposes:
                errors.append(RowError(row.number, "purpose", "unknown purpose"))
            elif row.notice_version and (row.purpose, row.notice_version) not in versions:
                errors.append(RowError(row.number, "notice_version", "unknown version"))
            else:
                good.append(row)
        customers = _resolve(good, errors)
        decisions = [
            ConsentDecision(
                customer=customers[row.number],
                purpose_code=row.purpose,
                granted=row.granted,
                channel=row.channel,
                method=row.method,
                at=row.at,
                notice_version=row.notice_version,
                proof={"import_row": row.number},
            )
            for row in good
            if row.number in customers
        ]
        if decisions:
            report.applied += len(consent_record_many(decisions=decisions, actor=actor))
        report.errors.extend(sorted(errors, key=lambda e: (e.row, e.column)))
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="consent.import",
            object_type="consent.consentevent",
            details={"rows": report.rows, "applied": report.applied, "rejected": report.rejected},
        )
    return report
