"""Reads of customer profiles."""

from __future__ import annotations

from django.db.models import QuerySet

from cdp.crypto.errors import NormalizationError
from cdp.profiles.models import Customer, Identity, IdentityKind
from cdp.profiles.services import identifier_index


def customer_find_by_identifier(kind: str, value: str) -> Customer | None:
    """Exact lookup through the blind index; a malformed value finds nobody."""
    try:
        _, index = identifier_index(kind, value)
    except NormalizationError:
        return None
    identity = (
        Identity.objects.select_related("customer").filter(kind=kind, value_index=index).first()
    )
    return identity.customer if identity else None


def customers_matching_search(term: str) -> QuerySet[Customer]:
    """Admin search without decryption: an exact e-mail, phone or id, matched by blind index."""
    term = term.strip()
    for kind in (IdentityKind.EMAIL, IdentityKind.PHONE, IdentityKind.USER_ID):
        try:
            _, index = identifier_index(kind, term)
        except NormalizationError:
            continue
        ids = Identity.objects.filter(kind=kind, value_index=index).values("customer_id")
        matches = Customer.objects.filter(id__in=ids)
        if matches.exists():
            return matches
    return Customer.objects.none()
