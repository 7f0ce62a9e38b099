"""From a raw CSV row to clean values: one function per import kind, no database access.

A row with any problem is rejected whole (nothing of it is stored), with one reason per
problem: the row number, the column (header) and what is wrong, never the value.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cdp.crypto.blind_index import blind_index, normalize_email
from cdp.crypto.errors import NormalizationError
from cdp.ingest.imports.cleaning import (
    CellError,
    clean_bool,
    clean_country,
    clean_date,
    clean_datetime,
    clean_decimal,
    clean_identifier,
    clean_int,
    refuse_formula,
    typed_attribute,
)
from cdp.ingest.imports.phones import phone_e164
from cdp.ingest.imports.reader import RawRow, has_bad_encoding
from cdp.ingest.imports.resolve import RowClaim, RowIdent
from cdp.profiles.models import IdentityKind
from cdp.profiles.resolution import Ident, is_blocked
from cdp.profiles.services import identifier_index

ROW_DOMAIN = "import_row"
CONTENT_DOMAIN = "import_content"
NUMERIC_TRANSACTION = ("quantity", "price", "amount")
# A source's own ids may be "0" or "-1"; only values that are plainly not an id are ignored.
JUNK_IDS = {"null", "undefined", "none", "nil", "nan", "[object object]", "n/a"}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    code: str
    reason: str


@dataclass
class Context:
    """What cleaning needs to know about the job (built once per run)."""

    headers: list[str]
    mapping: dict[str, str]
    source_name: str
    region: str | None
    day_first: bool
    currency: str
    rules: tuple[str, ...]
    blocked: dict[str, set[str]]
    columns: list[tuple[int, str, str]] = field(default_factory=list)  # (index, header, target)
    # (kind, value, region) -> Ident, for this run: a file repeats its customers (one line per
    # order line), and a phone parse costs more than the rest of a row's cleaning.
    idents: dict[tuple[str, str, str | None], Ident] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.columns = [
            (i, h, self.mapping.get(h, "ignore"))
            for i, h in enumerate(self.headers)
            if self.mapping.get(h, "ignore") != "ignore"
        ]


@dataclass
class ProfileRow:
    number: int
    fields: dict[str, Any]  # Customer fields (email and email_index, phone..., names, birth date)
    country: str
    attributes: dict[str, Any]
    traits: dict[str, Any]
    consents: dict[str, tuple[bool, dt.datetime | None]]
    claim: RowClaim
    record: dict[str, Any]
    row_index: bytes


@dataclass
class TransactionRow:
    number: int
    message_id: str
    claim: RowClaim
    invoice: str
    product_id: str
    quantity: int
    price: Decimal | None
    amount: Decimal
    currency: str
    timestamp: dt.datetime
    category: str
    country: str
    anonymous: bool
    record: dict[str, Any]


# json.dumps(values, sort_keys=True, default=str, ensure_ascii=False), without building the
# encoder per call: the fingerprint must stay byte-for-byte what earlier imports stored.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)


def _fingerprint(values: dict[str, Any], domain: str) -> bytes:
    return blind_index(_FINGERPRINT_JSON.encode(values), domain=domain)


def _cells(raw: RawRow, ctx: Context, errors: list[RowError]) -> dict[str, tuple[str, str]]:
    """target -> (header, stripped text) for mapped, non-empty cells; ragged rows refused."""
    if len(raw.values) != len(ctx.headers):
        errors.append(
            RowError(
                raw.number,
                "",
                "ragged_row",
                f"has {len(raw.values)} fields where the header has {len(ctx.headers)}",
            )
        )
        return {}
    if has_bad_encoding(raw.values):
        column = next(
            (h for h, v in zip(ctx.headers, raw.values, strict=True) if has_bad_encoding([v])), ""
        )
        errors.append(
            RowError(raw.number, column, "encoding", "bytes invalid in the file's encoding")
        )
        return {}
    cells = {}
    for index, header, target in ctx.columns:
        text = raw.values[index].strip()
        if text:
            cells[target] = (header, text)
    return cells


IDENT_MEMO_SIZE = 20_000
# Identity kinds as plain strings: they key the planner's dictionaries, and hashing an enum
# member runs Python code.
_EXTERNAL_ID = IdentityKind.EXTERNAL_ID.value
_EMAIL = IdentityKind.EMAIL.value
_PHONE = IdentityKind.PHONE.value
_ANONYMOUS_ID = IdentityKind.ANONYMOUS_ID.value


def _ident(kind: str, value: str, region: str | None, ctx: Context) -> Ident:
    """The normalised identifier and its blind index, memoised for the run (bounded) by the
    cell's text: a value seen before is neither normalised nor indexed again."""
    key = (kind, value, region)
    ident = ctx.idents.get(key)
    if ident is None:
        if kind == _PHONE or kind == _EMAIL:
            # identifier_index's normalisation, faster (the same result; tests/.../test_phones).
            normalized = phone_e164(value, region) if kind == _PHONE else normalize_email(value)
            ident = Ident(kind, normalized, blind_index(normalized, domain=kind))
        else:
            normalized, index = identifier_index(kind, value, default_region=region)
            ident = Ident(kind, normalized, index)
        if len(ctx.idents) >= IDENT_MEMO_SIZE:
            ctx.idents.clear()
        ctx.idents[key] = ident
    return ident


def _identifiers(
    cells: dict[str, tuple[str, str]], ctx: Context, number: int, errors: list[RowError]
) -> tuple[list[RowIdent], dict[str, Any], dict[str, Any]]:
    """Row identifiers in rule order, the Customer fields they fill, and their record values."""
    idents: list[RowIdent] = []
    fields: dict[str, Any] = {}
    record: dict[str, Any] = {}
    if "customer_id" in cells:
        header, text = cells["customer_id"]
        value = clean_identifier(text)
        try:
            refuse_formula(value)
            ident = _ident(_EXTERNAL_ID, value, None, ctx)
            record["customer_id"] = value
            if ident.normalized.lower() not in JUNK_IDS:
                idents.append(RowIdent("customer_id", ctx.source_name, ident))
        except CellError as exc:
            errors.append(RowError(number, header, exc.code, exc.reason))
        except NormalizationError:
            errors.append(RowError(number, header, "invalid_identifier", "empty identifier"))
    if "email" in cells:
        header, text = cells["email"]
        try:
            # A local part may hold "=", "(" and quotes: `=HYPERLINK("...")@x.example` is an
            # address to the normaliser and a formula to the spreadsheet it is exported to.
            refuse_formula(text)
            # identifier_index normalises as clean_email does (trimmed, lower-cased, refused
            # when plainly not an address), so the cell's text is the memo's key.
            ident = _ident(_EMAIL, text, None, ctx)
            fields["email"], fields["email_index"] = ident.normalized, ident.index
            record["email"] = ident.normalized
            if not is_blocked(_EMAIL, ident.normalized, ctx.blocked):
                idents.append(RowIdent("email", "", ident))
        except CellError as exc:
            errors.append(RowError(number, header, exc.code, exc.reason))
        except NormalizationError:
            exc = CellError("invalid_email", "not a valid e-mail address")
            errors.append(RowError(number, header, exc.code, exc.reason))
    if "phone" in cells:
        header, text = cells["phone"]
        try:
            ident = _ident(_PHONE, text, ctx.region, ctx)
            fields["phone"], fields["phone_index"] = ident.normalized, ident.index
            record["phone"] = ident.normalized
            if not is_blocked(_PHONE, ident.normalized, ctx.blocked):
                idents.append(RowIdent("phone", "", ident))
        except NormalizationError:
            reason = "not a valid phone number" + (
                f" (default region {ctx.region})" if ctx.region else " (no default region set)"
            )
            errors.append(RowError(number, header, "invalid_phone", reason))
    return idents, fields, record


def clean_profile(raw: RawRow, ctx: Context) -> ProfileRow | list[RowError]:
    errors: list[RowError] = []
    cells = _cells(raw, ctx, errors)
    if errors:
        return errors
    idents, fields, record = _identifiers(cells, ctx, raw.number, errors)
    country = ""
    attributes: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    consent_flags: dict[str, bool] = {}
    consent_dates: dict[str, dt.datetime] = {}
    for target, (header, text) in cells.items():
        try:
            if target in ("customer_id", "email", "phone"):
                continue
            if target == "country":
                country = clean_country(text)
                record["country"] = country
            elif target in ("first_name", "last_name"):
                refuse_formula(text)
                fields[target] = record[target] = text
            elif target == "full_name":
                refuse_formula(text)
                first, _, last = text.rpartition(" ")
                fields["first_name"], fields["last_name"] = (first, last) if first else (text, None)
                record["full_name"] = text
            elif target == "birth_date":
                fields["birth_date"] = clean_date(text, ctx.day_first)
                record["birth_date"] = fields["birth_date"].isoformat()
            elif target.startswith("attribute:"):
                refuse_formula(text)
                attributes[target[10:]] = record[target] = typed_attribute(text)
            elif target.startswith("trait:"):
                refuse_formula(text)
                traits[target[6:]] = record[target] = typed_attribute(text)
            elif target.startswith("consent:"):
                consent_flags[target[8:]] = record[target] = clean_bool(text)
            elif target.startswith("consent_date:"):
                consent_dates[target[13:]] = clean_datetime(text, ctx.day_first)
                record[target] = consent_dates[target[13:]].isoformat()
        except CellError as exc:
            errors.append(RowError(raw.number, header, exc.code, exc.reason))
    if not errors and not idents:
        errors.append(
            RowError(
                raw.number,
                "",
                "no_identifier",
                "no usable customer id, e-mail or phone (missing, invalid or a placeholder)",
            )
        )
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5) if consent_dates else None
    for purpose, at in consent_dates.items():
        if latest is not None and at > latest:
            header = next(h for h, t in ctx.mapping.items() if t == f"consent_date:{purpose}")
            errors.append(RowError(raw.number, header, "future_date", "consent date in the future"))
    if errors:
        return errors
    content = None
    if "content" in ctx.rules:
        rest = {k: v for k, v in record.items() if k not in ("customer_id", "email", "phone")}
        content = _fingerprint(rest, CONTENT_DOMAIN) if rest else None
    return ProfileRow(
        number=raw.number,
        fields=fields,
        country=country,
        attributes=attributes,
        traits=traits,
        consents={p: (flag, consent_dates.get(p)) for p, flag in consent_flags.items()},
        claim=RowClaim(raw.number, idents, content, country),
        record=record,
        row_index=_fingerprint(record, ROW_DOMAIN),
    )


def is_non_product(product_id: str) -> bool:
    """Postage, fees, discounts, manual adjustments, vouchers: stock codes that do not start with
    a digit (POST, DOT, M, C2, D, S, BANK CHARGES, AMAZONFEE, gift_0001_...)."""
    return bool(product_id) and not product_id[:1].isdigit()


def clean_transaction(raw: RawRow, ctx: Context) -> TransactionRow | list[RowError]:
    errors: list[RowError] = []
    cells = _cells(raw, ctx, errors)
    if errors:
        return errors
    idents, _fields, record = _identifiers(cells, ctx, raw.number, errors)
    values: dict[str, Any] = {}
    currency = ""
    for target, (header, text) in cells.items():
        try:
            if target in ("invoice", "product_id", "category"):
                refuse_formula(text)
                values[target] = text[:255]
            elif target == "quantity":
                values[target] = clean_int(text)
            elif target in ("price", "amount"):
                values[target], sign = clean_decimal(text)
                currency = currency or sign
            elif target == "currency":
                code = text.upper()
                if len(code) != 3 or not code.isalpha():
                    raise CellError("invalid_currency", "not an ISO 4217 code")
                values["currency"] = code
            elif target == "date":
                values["date"] = clean_datetime(text, ctx.day_first)
            elif target == "country":
                values["country"] = clean_country(text)
        except CellError as exc:
            errors.append(RowError(raw.number, header, exc.code, exc.reason))
    for required in ("invoice", "quantity", "date"):
        if required not in values and not any(e.column == _header(ctx, required) for e in errors):
            errors.append(RowError(raw.number, _header(ctx, required), "missing", "missing value"))
    priced = {_header(ctx, "price"), _header(ctx, "amount")}
    if (
        "price" not in values
        and "amount" not in values
        and not any(e.column in priced for e in errors)
    ):  # a price that is there but invalid has its reason already; it is not "missing"
        errors.append(RowError(raw.number, _header(ctx, "price"), "missing", "missing price"))
    if errors:
        return errors
    quantity = values["quantity"]
    price = values.get("price")
    amount = values["amount"] if "amount" in values else quantity * price
    currency = values.get("currency") or currency or ctx.currency
    anonymous = not idents
    if anonymous:
        ident = _ident(_ANONYMOUS_ID, f"invoice:{values['invoice']}", None, ctx)
        idents = [RowIdent("anonymous", ctx.source_name, ident)]
    record.update(
        {
            "invoice": values["invoice"],
            "product_id": values.get("product_id", ""),
            "quantity": quantity,
            "price": None if price is None else str(price),
            "amount": str(amount),
            "currency": currency,
            "date": values["date"].isoformat(),
            "category": values.get("category", ""),
            "country": values.get("country", ""),
        }
    )
    fingerprint = _fingerprint(record, ROW_DOMAIN)
    return TransactionRow(
        number=raw.number,
        message_id="csv:" + fingerprint.hex(),
        claim=RowClaim(raw.number, idents, None, values.get("country", "")),
        invoice=values["invoice"],
        product_id=values.get("product_id", ""),
        quantity=quantity,
        price=price,
        amount=amount.quantize(Decimal("0.0001")),
        currency=currency,
        timestamp=values["date"],
        category=values.get("category", ""),
        country=values.get("country", ""),
        anonymous=anonymous,
        record=record,
    )


def _header(ctx: Context, target: str) -> str:
    return next((h for h, t in ctx.mapping.items() if t == target), target)
