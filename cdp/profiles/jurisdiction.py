"""Which privacy regime applies, derived from a customer's country."""

from __future__ import annotations

import pycountry
from django.db import models


class Jurisdiction(models.TextChoices):
    GDPR = "gdpr", "GDPR (EU/EEA/UK/CH)"
    CCPA = "ccpa", "CCPA (United States)"
    OTHER = "other", "Other"


# EU member states, the EEA (Iceland, Liechtenstein, Norway), the UK (UK GDPR) and Switzerland
# (revised FADP, modelled on the GDPR): the strict opt-in regime applies to all of them.
GDPR_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO GB CH".split()
)
CCPA_COUNTRIES = frozenset({"US"})

# Spellings seen in real files that pycountry's fuzzy search gets wrong or does not know.
_ALIASES = {
    "UK": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "GREAT BRITAIN": "GB",
    "UNITED KINGDOM": "GB",
    "EIRE": "IE",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED STATES": "US",
    "RSA": "ZA",
    "EUROPEAN COMMUNITY": "",
    "UNSPECIFIED": "",
    "CHANNEL ISLANDS": "GB",
}


def country_code(value: str | None) -> str:
    """An ISO 3166-1 alpha-2 code for a name or code, or "" when unknown."""
    if not value or not value.strip():
        return ""
    text = value.strip()
    upper = text.upper()
    if upper in _ALIASES:
        return _ALIASES[upper]
    country = pycountry.countries.get(alpha_2=upper) if len(upper) == 2 else None
    if country is None and len(upper) == 3:
        country = pycountry.countries.get(alpha_3=upper)
    if country is None:
        try:
            country = pycountry.countries.lookup(text)
        except LookupError:
            return ""
    return country.alpha_2


def jurisdiction_for(country: str) -> Jurisdiction:
    if country in GDPR_COUNTRIES:
        return Jurisdiction.GDPR
    if country in CCPA_COUNTRIES:
        return Jurisdiction.CCPA
    return Jurisdiction.OTHER
