"""Cleaning of single values: e-mails, phones (E.164), countries (ISO 3166), dates, numbers.

Every parser returns the clean value or raises `CellError` with a reason that names the problem,
never the value (reasons end up in the downloadable error report).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import phonenumbers

from cdp.crypto.blind_index import normalize_email
from cdp.crypto.errors import NormalizationError
from cdp.profiles.jurisdiction import country_code

_AMOUNT_LIMIT = Decimal("1e14")
_CURRENCY_SIGNS = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "₹": "INR", "R$": "BRL"}
_FORMULA_START = ("=", "@", "\t", "\r")
_TRUE = {"1", "true", "yes", "y", "t", "granted", "opt-in", "optin", "opt_in", "x", "on"}
_FALSE = {"0", "false", "no", "n", "f", "withdrawn", "opt-out", "optout", "opt_out", "off"}


class CellError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def clean_text(value: str) -> str:
    return value.strip()


def refuse_formula(value: str) -> None:
    """Spreadsheet formula injection (`=HYPERLINK(...)`, `@SUM`, `+cmd|...`): a text value that
    a spreadsheet would execute when the data is exported again."""
    if value.startswith(_FORMULA_START) or (
        value[:1] in "+-" and len(value) > 1 and not _looks_numeric(value)
    ):
        raise CellError("formula", "looks like a spreadsheet formula")


def _looks_numeric(value: str) -> bool:
    return bool(re.fullmatch(r"[+-]?[\d\s().,/-]+", value))


def clean_email(value: str) -> str:
    try:
        return normalize_email(value)
    except NormalizationError:
        raise CellError("invalid_email", "not a valid e-mail address") from None


@lru_cache(maxsize=4096)
def _phone(value: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise CellError("invalid_phone", "not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise CellError("invalid_phone", "not a possible phone number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_phone(value: str, region: str | None) -> str:
    """E.164, with the source's default region for national numbers."""
    return _phone(value.strip(), (region or "").upper() or None)


@lru_cache(maxsize=1024)
def clean_country(value: str) -> str:
    """ISO 3166-1 alpha-2; "" for the placeholders exports use ("Unspecified")."""
    text = value.strip()
    if not text:
        return ""
    code = country_code(text)
    if code:
        return code
    if text.upper() in ("UNSPECIFIED", "EUROPEAN COMMUNITY", "UNKNOWN", "N/A", "NA", "-"):
        return ""
    raise CellError("invalid_country", "not a known country name or code")


_DATE_FORMATS_DAY_FIRST = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d/%m/%y %H:%M",
    "%d/%m/%y",
)
_DATE_FORMATS_MONTH_FIRST = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%m-%d-%Y %H:%M:%S",
    "%m-%d-%Y %H:%M",
    "%m-%d-%Y",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
)


@lru_cache(maxsize=8192)
def clean_datetime(value: str, day_first: bool) -> dt.datetime:
    """ISO 8601 first (with or without zone, " UTC" suffix allowed), then the slash, dash and dot
    formats with the day first or the month first as the source says. Naive times are UTC."""
    text = value.strip()
    if not text:
        raise CellError("missing", "missing value")
    if text.endswith(" UTC"):
        text = text[:-4]
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
        formats = _DATE_FORMATS_DAY_FIRST if day_first else _DATE_FORMATS_MONTH_FIRST
        for fmt in formats:
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            raise CellError(
                "invalid_date",
                "not a date in a known format (day-first is "
                + ("on" if day_first else "off")
                + ")",
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not (1900 <= parsed.year <= 2100):
        raise CellError("invalid_date", "date out of range (1900-2100)")
    return parsed.astimezone(dt.UTC)


def clean_date(value: str, day_first: bool) -> dt.date:
    return clean_datetime(value, day_first).date()


def clean_decimal(value: str) -> tuple[Decimal, str]:
    """A number with an optional currency sign or code; thousands separators dropped.

    A comma alone is a decimal comma when it is followed by one or two digits ("3,5" -> 3.5).
    Returns (number, currency code or "")."""
    text = value.strip().replace("\u00a0", "").replace(" ", "")
    currency = ""
    for sign, code in _CURRENCY_SIGNS.items():
        if sign in text:
            currency, text = code, text.replace(sign, "")
    match = re.fullmatch(r"([A-Z]{3})?([-+(]?[\d.,]+\)?)([A-Z]{3})?", text)
    if match is None:
        raise CellError("invalid_number", "not a number")
    currency = match.group(1) or match.group(3) or currency
    text = match.group(2)
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    if "," in text and "." in text:
        text = (
            text.replace(",", "")
            if text.rfind(".") > text.rfind(",")
            else (text.replace(".", "").replace(",", "."))
        )
    elif "," in text:
        text = text.replace(",", ".") if re.search(r",\d{1,2}$", text) else text.replace(",", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CellError("invalid_number", "not a number") from None
    if not number.is_finite() or abs(number) >= _AMOUNT_LIMIT:
        raise CellError("invalid_number", "number out of range")
    return (-number if negative else number), currency


def clean_int(value: str) -> int:
    number, _ = clean_decimal(value)
    if number != number.to_integral_value():
        raise CellError("invalid_integer", "not a whole number")
    return int(number)


def clean_bool(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError("invalid_boolean", "not yes/no")


def clean_identifier(value: str) -> str:
    """A source's customer id: "17850.0" (a float-formatted integer) is "17850"."""
    text = value.strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".", 1)[0]
    return text


_INTEGER = re.compile(r"[+-]?\d{1,15}")
_DECIMAL = re.compile(r"[+-]?\d{0,15}\.\d{1,10}")


def typed_attribute(value: str) -> object:
    """Attributes keep their type: integers, decimals (as numbers), booleans, else text."""
    text = value.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text
