"""Writes to customer profiles. Each use case owns its transaction and its audit entry."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from cdp.audit.services import audit_record
from cdp.crypto.blind_index import (
    blind_index,
    normalize_email,
    normalize_identifier,
    normalize_phone,
)
from cdp.crypto.registry import personal_fields_of
from cdp.profiles.jurisdiction import country_code, jurisdiction_for
from cdp.profiles.models import Customer, Identity, IdentityKind


@dataclass(frozen=True)
class IdentifierValue:
    kind: IdentityKind
    value: str
    namespace: str = ""


def identifier_index(
    kind: str, value: str, *, default_region: str | None = None
) -> tuple[str, bytes]:
    """The normalised value and its blind index for an identifier of the given kind."""
    if kind == IdentityKind.EMAIL:
        normalized = normalize_email(value)
    elif kind == IdentityKind.PHONE:
        normalized = normalize_phone(value, default_region=default_region)
    else:
        normalized = normalize_identifier(value)
    return normalized, blind_index(normalized, domain=kind)


def customer_create(
    *,
    actor: str,
    email: str | None = None,
    phone: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    birth_date: datetime.date | None = None,
    address: dict[str, Any] | None = None,
    country: str | None = None,
    traits: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
    default_region: str | None = None,
    identifiers: list[IdentifierValue] | None = None,
) -> Customer:
    """Create a profile with its e-mail and phone identities.

    E-mail and phone are normalised (lower-case; E.164) before they are encrypted and indexed;
    a malformed value raises NormalizationError, whose message carries no personal data.
    """
    code = country_code(country)
    customer = Customer(
        country=code,
        jurisdiction=jurisdiction_for(code),
        first_name=first_name,
        last_name=last_name,
        birth_date=birth_date,
        address=address,
        traits=traits,
        attributes=attributes or {},
    )
    region = default_region or code or None
    # Normalise and index every identifier before writing anything: a malformed one refuses the
    # whole profile.
    indexed: list[tuple[IdentifierValue, str, bytes]] = []
    for item in identifiers or []:
        indexed.append((item, *identifier_index(item.kind, item.value, default_region=region)))
    if email is not None:
        customer.email, customer.email_index = identifier_index(IdentityKind.EMAIL, email)
        indexed.append(
            (IdentifierValue(IdentityKind.EMAIL, email), customer.email, customer.email_index)
        )
    if phone is not None:
        customer.phone, customer.phone_index = identifier_index(
            IdentityKind.PHONE, phone, default_region=region
        )
        indexed.append(
            (IdentifierValue(IdentityKind.PHONE, phone), customer.phone, customer.phone_index)
        )
    with transaction.atomic():
        customer.save()
        identities = [
            Identity(
                customer=customer,
                kind=item.kind,
                namespace=item.namespace,
                value=normalized,
                value_index=index,
            )
            for item, normalized, index in indexed
        ]
        Identity.objects.bulk_create(identities)
        audit_record(
            actor=actor,
            action="customer.create",
            object_type="profiles.customer",
            object_id=str(customer.id),
            details={"identities": sorted({str(i.kind) for i in identities})},
        )
    return customer


def customer_reveal(*, customer: Customer, actor: str, reason: str = "") -> dict[str, Any]:
    """Decrypt a customer's registered personal fields for a permitted user, and audit it.

    The audit entry is written first, in the same transaction: if it cannot be written, nothing
    is revealed (no fail-open). Which fields were shown is recorded; their values are not.
    """
    fields = [f.field for f in personal_fields_of(Customer) if f.category != "blind_index"]
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="customer.reveal",
            object_type="profiles.customer",
            object_id=str(customer.id),
            details={"fields": fields, "reason_given": bool(reason.strip())},
        )
        return {name: getattr(customer, name) for name in fields}
