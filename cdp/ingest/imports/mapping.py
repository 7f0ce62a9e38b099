"""Column mapping: what each header means, guessed from common names and correctable.

A mapping is {header: target}. Targets:

- a field of the import kind (`FIELDS[kind]`), e.g. `email`, `customer_id`, `invoice`;
- `attribute:<key>`: a non-personal value, stored in plaintext for analytics;
- `trait:<key>`: any other value, stored encrypted in the profile's traits;
- `consent:<purpose>` (a yes/no column) and `consent_date:<purpose>` (when it was given);
- `ignore`.

Unknown headers are guessed as attributes when the property classes call the key non-personal,
else as encrypted traits: personal by default.
"""

from __future__ import annotations

import re
from typing import Any

from cdp.api.errors import ApplicationError
from cdp.ingest.classification import classes
from cdp.ingest.models import ImportKind, PropertyClassKind

PROFILE_FIELDS = {
    "customer_id": "Customer id in the source system",
    "email": "E-mail address",
    "phone": "Phone number",
    "first_name": "First name",
    "last_name": "Last name",
    "full_name": "Full name (split at the last space)",
    "birth_date": "Birth date",
    "country": "Country",
}
TRANSACTION_FIELDS = {
    "customer_id": "Customer id in the source system",
    "email": "E-mail address",
    "phone": "Phone number",
    "invoice": "Invoice / order id",
    "product_id": "Product id / stock code / SKU",
    "quantity": "Quantity",
    "price": "Unit price",
    "amount": "Line total (quantity x price when absent)",
    "currency": "Currency (ISO 4217)",
    "date": "Order date and time",
    "country": "Country",
    "category": "Product category",
    "description": "Product description (not stored)",
}
FIELDS = {ImportKind.PROFILES: PROFILE_FIELDS, ImportKind.TRANSACTIONS: TRANSACTION_FIELDS}
REQUIRED = {
    ImportKind.PROFILES: (),
    ImportKind.TRANSACTIONS: ("invoice", "quantity", "date"),
}
IDENTIFIER_FIELDS = ("customer_id", "email", "phone")

_ALIASES = {
    "customer_id": {
        "customerid",
        "customer",
        "custid",
        "clientid",
        "id",
        "userid",
        "memberid",
        "customerno",
        "customernumber",
        "accountid",
        "externalid",
    },
    "email": {"email", "emailaddress", "mail", "emailaddr", "courriel", "useremail"},
    "phone": {
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "mobile",
        "mobilephone",
        "cell",
        "msisdn",
    },
    "first_name": {"firstname", "givenname", "forename", "first", "prenom", "fname"},
    "last_name": {"lastname", "surname", "familyname", "last", "nom", "lname"},
    "full_name": {"name", "fullname", "customername"},
    "birth_date": {"birthdate", "dateofbirth", "dob", "birthday"},
    "country": {"country", "countrycode", "countryname", "nation"},
    "invoice": {
        "invoice",
        "invoiceno",
        "invoicenumber",
        "invoiceid",
        "orderid",
        "order",
        "orderno",
        "ordernumber",
        "transactionid",
    },
    "product_id": {"stockcode", "sku", "productid", "product", "itemid", "productcode"},
    "quantity": {"quantity", "qty", "units", "count"},
    "price": {"unitprice", "price", "itemprice"},
    "amount": {"amount", "total", "linetotal", "revenue", "value", "sales"},
    "currency": {"currency", "currencycode"},
    "date": {
        "date",
        "invoicedate",
        "orderdate",
        "timestamp",
        "datetime",
        "eventtime",
        "createdat",
        "purchasedate",
        "transactiondate",
    },
    "category": {"category", "productcategory", "categorycode"},
    "description": {"description", "productname", "itemname", "title"},
}
_CONSENT_RE = re.compile(
    r"^(?P<purpose>[a-z_]+?)_?(opt_?in|consent|optin|allowed)(?P<date>_?date|_?at)?$"
)


class MappingError(ApplicationError):
    pass


def normalize_header(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _slug(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")[:64] or "column"


def guess_mapping(
    headers: list[str], kind: str, purposes: set[str] | None = None
) -> dict[str, str]:
    """The likely target of every header; each field is given to one header at most."""
    fields = FIELDS[kind]
    table = classes()
    purposes = purposes or set()
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        key = normalize_header(header)
        target = next((f for f in fields if f not in taken and key in _ALIASES.get(f, set())), None)
        if target is not None:
            mapping[header] = target
            taken.add(target)
            continue
        consent = _CONSENT_RE.match(_slug(header))
        if consent and consent.group("purpose").strip("_") in purposes:
            purpose = consent.group("purpose").strip("_")
            mapping[header] = (
                f"consent_date:{purpose}" if consent.group("date") else f"consent:{purpose}"
            )
            continue
        if kind == ImportKind.TRANSACTIONS:
            mapping[header] = "ignore"
        elif table.trait_kind(_slug(header)) == PropertyClassKind.NON_PERSONAL:
            mapping[header] = f"attribute:{_slug(header)}"
        else:
            mapping[header] = f"trait:{_slug(header)}"
    return mapping


def targets_for(kind: str) -> list[tuple[str, str]]:
    """The choices offered for a column (the admin's select)."""
    return [
        *FIELDS[kind].items(),
        ("attribute:", "Attribute (non-personal, plaintext)"),
        ("trait:", "Trait (personal, encrypted)"),
        ("consent:", "Consent yes/no for a purpose"),
        ("consent_date:", "Consent date for a purpose"),
        ("ignore", "Ignore"),
    ]


def validate_mapping(
    mapping: dict[str, Any], headers: list[str], kind: str, purposes: set[str]
) -> dict[str, str]:
    """A clean mapping for these headers, or MappingError naming the header (never a value)."""
    if not isinstance(mapping, dict):
        raise MappingError("import_mapping_invalid", "the mapping must be an object")
    fields = FIELDS[kind]
    clean: dict[str, str] = {}
    used: dict[str, str] = {}
    errors: dict[str, str] = {}
    for header in headers:
        target = str(mapping.get(header, "ignore") or "ignore").strip()
        prefix, sep, key = target.partition(":")
        if target == "ignore" or target in fields:
            pass
        elif sep and prefix in ("attribute", "trait") and re.fullmatch(r"[A-Za-z0-9_]{1,64}", key):
            pass
        elif sep and prefix in ("consent", "consent_date") and key in purposes:
            pass
        elif sep and prefix in ("attribute", "trait") and not key:
            target = f"{prefix}:{_slug(header)}"
        else:
            errors[header] = f"unknown target {target[:80]!r}"
            continue
        if target != "ignore" and target in used:
            errors[header] = f"{target} is already mapped from another column"
            continue
        used[target] = header
        clean[header] = target
    unknown = set(mapping) - set(headers)
    for header in sorted(unknown)[:20]:
        errors[str(header)[:100]] = "no such column in the file"
    missing = [f for f in REQUIRED[kind] if f not in used]
    if kind == ImportKind.TRANSACTIONS and "price" not in used and "amount" not in used:
        missing.append("price or amount")
    if missing:
        errors["_mapping"] = "missing required fields: " + ", ".join(missing)
    for purpose_date in (t for t in used if t.startswith("consent_date:")):
        if f"consent:{purpose_date.partition(':')[2]}" not in used:
            errors[used[purpose_date]] = "a consent date needs its consent column"
    if errors:
        raise MappingError("import_mapping_invalid", "the column mapping is invalid", fields=errors)
    return clean
