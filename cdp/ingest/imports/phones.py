"""E.164 for the shapes a CSV usually holds, with the `phonenumbers` metadata but without its
general parser: the same result and the same accept/reject decision as
`cdp.crypto.blind_index.normalize_phone`, at a fraction of the cost.

`normalize_phone` (`phonenumbers.parse`, then `is_valid_number`, then `format_number`) spent
~90 µs of a profile row's ~450: the parser runs a dozen general patterns (RFC 3966 contexts,
extensions, punctuation, alpha vanity numbers) and validation classifies the number twice, each
time through up to eleven number-type patterns, compiling each pattern through the `re` cache.

The fast path takes two shapes only: "+" and ASCII digits (single spaces allowed between them),
and ASCII digits (and spaces) read with the source's default region. For those, the steps of
`parse` that look for RFC 3966 parts, extensions, a second number or letters find nothing, so it
goes straight to the library's own country-code extraction, national-prefix stripping and length
test (the same functions `parse` calls), then decides validity as `is_valid_number` does: the
region of the number (leading digits or the first region whose types match), then "does any
number type match", with the metadata's patterns compiled once. Anything else, and anything the
parser would reject, goes through `normalize_phone` itself, so its errors stay the library's.
`tests/ingest/imports/test_phones.py` checks equality with `normalize_phone` property-wise.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, NumberParseException
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumber import PhoneNumber

from cdp.crypto.blind_index import normalize_phone
from cdp.crypto.errors import NormalizationError

_PLUS_FORM = re.compile(r"\+[1-9](?: ?[0-9])*")
_NATIONAL_FORM = re.compile(r"[0-9](?: ?[0-9])*")
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_CC_DIGITS = 3
_SHORT_RESULTS = (
    _pnu.ValidationResult.TOO_SHORT,
    _pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    _pnu.ValidationResult.INVALID_LENGTH,
)
# The number types `_number_type_helper` tries after the general description, the most common
# first (a number is valid when any matches, so the order does not change the answer).
_TYPE_DESCS = (
    "mobile",
    "fixed_line",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)

_Desc = tuple[frozenset[int] | None, Callable[[str], object]]


def _desc(number_desc: object) -> _Desc | None:
    """`_is_number_matching_desc` for one description: (possible lengths or None, fullmatch);
    None when the description can never match."""
    if number_desc is None:
        return None
    pattern = number_desc.national_number_pattern  # type: ignore[attr-defined]
    if not pattern:
        return None
    lengths = number_desc.possible_length  # type: ignore[attr-defined]
    return (frozenset(lengths) if len(lengths) > 0 else None, re.compile(pattern).fullmatch)


class _Classifier:
    """ "Is the number of some known type" for one region's metadata, patterns compiled once."""

    __slots__ = ("general", "types")

    def __init__(self, metadata: PhoneMetadata) -> None:
        self.general = _desc(metadata.general_desc)
        names = _TYPE_DESCS
        if metadata.same_mobile_and_fixed_line_pattern:
            names = tuple(n for n in names if n != "mobile")  # the helper skips it then
        self.types = tuple(d for d in (_desc(getattr(metadata, n)) for n in names) if d)

    def known(self, nsn: str) -> bool:
        general = self.general
        if general is None:
            return False
        size = len(nsn)
        lengths, fullmatch = general
        if (lengths is not None and size not in lengths) or fullmatch(nsn) is None:
            return False
        for lengths, fullmatch in self.types:
            if (lengths is None or size in lengths) and fullmatch(nsn) is not None:
                return True
        return False


_classifiers: dict[int, _Classifier] = {}


def _classifier(metadata: PhoneMetadata) -> _Classifier:
    # Metadata objects live for the process (the library's registry holds them).
    found = _classifiers.get(id(metadata))
    if found is None:
        found = _classifiers[id(metadata)] = _Classifier(metadata)
    return found


_leading: dict[str, Callable[[str], object]] = {}


def _is_valid(country_code: int, nsn: str) -> bool:
    """`phonenumbers.is_valid_number` for a number given as country code and national
    significant number."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return False
    if len(regions) == 1:
        region = regions[0]
    else:  # _region_code_for_number_from_list
        region = None
        for candidate in regions:
            metadata = PhoneMetadata.metadata_for_region(candidate.upper(), None)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                match = _leading.get(metadata.leading_digits)
                if match is None:
                    match = _leading[metadata.leading_digits] = re.compile(
                        metadata.leading_digits
                    ).match
                if match(nsn):
                    region = candidate
                    break
            elif _classifier(metadata).known(nsn):
                # is_valid_number_for_region would classify it again with this same metadata
                return country_code == _pnu.country_code_for_valid_region(candidate)
        if region is None:
            return False
    # is_valid_number_for_region
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
    if metadata is None or (
        region != _pnu.REGION_CODE_FOR_NON_GEO_ENTITY
        and country_code != _pnu.country_code_for_valid_region(region)
    ):
        return False
    return _classifier(metadata).known(nsn)


def _parse(value: str, region: str | None) -> tuple[int, str] | None:
    """(country code, national significant number) as `phonenumbers.parse` reads `value`, for
    the two shapes; None when the shape is another or the parser would raise."""
    region_of_code = None
    if value[:1] == "+":
        if _PLUS_FORM.fullmatch(value) is None:
            return None
        digits = value[1:].replace(" ", "")
        if len(digits) <= _MIN_NSN:
            return None  # TOO_SHORT_AFTER_IDD
        country_code = 0
        for size in range(1, min(len(digits), _MAX_CC_DIGITS) + 1):
            code = int(digits[:size])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                country_code, national = code, digits[size:]
                break
        if not country_code:
            return None  # the parser retries without the plus: its own path decides
    else:
        if region is None or _NATIONAL_FORM.fullmatch(value) is None:
            return None
        metadata = PhoneMetadata.metadata_for_region(region, None)
        try:
            country_code, national = _pnu._maybe_extract_country_code(
                value, metadata, False, PhoneNumber()
            )
        except NumberParseException:
            return None
        if country_code == 0:  # a national number: the default region's metadata
            national = _pnu._normalize(value)
            country_code = metadata.country_code
            region_of_code = region
    if region_of_code is None:
        # As parse() goes on once the number named its country code: the metadata of the
        # code's main region (the default region's, when that is the main region).
        region_of_code = _pnu.region_code_for_country_code(country_code)
        if region_of_code != region:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(
                country_code, region_of_code
            )
        else:
            metadata = PhoneMetadata.metadata_for_region(region, None)
    if len(national) < _MIN_NSN:
        return None
    _, stripped, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _pnu._test_number_length(stripped, metadata) not in _SHORT_RESULTS:
        national = stripped
    if not (_MIN_NSN <= len(national) <= _MAX_NSN) or int(national) == 0:
        return None
    # The national significant number: Italian leading zeros kept, as format_number writes it
    # (for ASCII digits that is the string itself).
    return country_code, national


def phone_e164(value: str, region: str | None) -> str:
    """`normalize_phone(value, default_region=region)`: E.164, or NormalizationError."""
    parsed = None
    if region is None or region in SUPPORTED_REGIONS:
        parsed = _parse(value, region)
    if parsed is None:
        return normalize_phone(value, default_region=region)
    country_code, nsn = parsed
    if not _is_valid(country_code, nsn):
        raise NormalizationError("not a valid phone number for its region")
    return f"+{country_code}{nsn}"
