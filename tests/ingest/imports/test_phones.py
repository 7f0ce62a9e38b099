"""The import's phone fast path gives what `normalize_phone` gives (the same E.164 string, the
same refusals) for any input and default region, and is actually taken for the usual shapes;
and `normalize_email`'s one-split whitespace test decides as the per-character rule did."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cdp.crypto.blind_index import normalize_email, normalize_phone
from cdp.crypto.errors import NormalizationError
from cdp.ingest.imports import phones
from cdp.ingest.imports.phones import phone_e164

REGIONS = [None, *sorted(phonenumbers.SUPPORTED_REGIONS), "gb", "XX", "001"]
CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _reference(value: str, region: str | None) -> str:
    try:
        return normalize_phone(value, default_region=region)
    except NormalizationError:
        return "refused"


def _fast(value: str, region: str | None) -> str:
    try:
        return phone_e164(value, region)
    except NormalizationError:
        return "refused"


digits = st.text(alphabet="0123456789", min_size=0, max_size=18)
spaced = st.lists(st.text(alphabet="0123456789", min_size=1, max_size=5), max_size=5).map(" ".join)
# Numbers built from a real country code, with or without a national prefix (the "+44 07..."
# mistake), in every separator style; plus noise a CSV carries: extensions, letters, dashes.
with_code = st.builds(
    lambda plus, code, zero, rest: f"{plus}{code}{zero}{rest}",
    st.sampled_from(["+", "+ ", "00", "", "++", "\uff0b"]),
    st.sampled_from(CODES),
    st.sampled_from(["", "0", " 0", "00", " "]),
    st.one_of(digits, spaced),
)
noisy = st.builds(
    lambda head, tail: head + tail,
    st.one_of(with_code, digits, spaced),
    st.sampled_from(
        ["", " ext 12", " x123", "#", ";ext=5", "-", " (0)", "abc", " 1-800-FLOWERS", "  ", "٣"]
    ),
)
values = st.one_of(with_code, digits, spaced, noisy, st.text(max_size=20))


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(value=values, region=st.sampled_from(REGIONS))
@example(value="+44 07911 123456", region=None)  # national prefix after the country code
@example(value="+39 06 6982 1234", region=None)  # Italian leading zero kept
@example(value="06 6982 1234", region="IT")
@example(value="+39 0000", region=None)
@example(value="07911 123456", region="GB")
@example(value="082234", region="JE")  # the national prefix rule adds an area code
@example(value="4494911", region="BM")
@example(value="0011 44 7911 123456", region="AU")  # an international dialling prefix
@example(value="447911123456", region="GB")  # the country code without a plus
@example(value="+1 650 253 0000", region="US")
@example(value="+800 1234 5678", region=None)  # a non-geographic code
@example(value="+0 123456", region="GB")
@example(value="+999 123456", region=None)
@example(value="+4479111234567890123", region=None)
@example(value="+44 7911 123456 ext 7", region=None)
@example(value="07911 123456", region=None)
@example(value="07911 123456", region="gb")
def test_fast_path_equals_normalize_phone(value: str, region: str | None) -> None:
    assert _fast(value, region) == _reference(value, region)


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("+447400000001", None),
        ("+44 7400 000001", "GB"),
        ("+4407400000001", None),
        ("07400 000001", "GB"),
        ("+390669821234", None),
        ("+16502530000", None),
        ("+33612345678", "FR"),
    ],
)
def test_usual_shapes_take_the_fast_path(value: str, region: str | None) -> None:
    """Without this the property above would also hold if every value fell back."""
    parsed = phones._parse(value, region)
    assert parsed is not None
    assert f"+{parsed[0]}{parsed[1]}" == normalize_phone(value, default_region=region)


def test_every_example_number_agrees() -> None:
    """The metadata's own example numbers of every region and type, written the three ways a
    file writes them: international, national with the region, national with a trunk zero."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            nsn = phonenumbers.national_significant_number(number)
            for value, default in (
                (f"+{number.country_code}{nsn}", None),
                (nsn, region),
                ("0" + nsn, region),
                (f"+{number.country_code} 0{nsn}", region),
            ):
                assert _fast(value, default) == _reference(value, default), (region, kind)
                checked += 1
    assert checked > 2000


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    value=st.one_of(
        st.text(max_size=30),
        st.builds(
            lambda a, b, c: f"{a}@{b}{c}",
            st.text(max_size=8),
            st.text(max_size=8),
            st.sampled_from(["", ".", ".com", ".", " .x", "\u2003.de", "\u00a0", "."]),
        ),
    )
)
@example(value=" A@B.example ")
@example(value="a b@c.example")
@example(value="a@b.example\u2028")
@example(value="a\u3000@b.example")
@example(value="a@.b")
@example(value="a@b.")
@example(value="@b.c")
@example(value="")
@example(value="x" * 250 + "@b.co")
def test_e_mail_whitespace_test_by_split_equals_the_per_character_rule(value: str) -> None:
    """`normalize_email` finds inner whitespace with one `str.split`; the rule it replaced
    tested every character with `isspace()`. Same addresses accepted, same refused."""

    def per_character(value: str) -> str:
        text = value.strip().lower()
        local, at, domain = text.rpartition("@")
        if (
            not at
            or not local
            or "." not in domain
            or domain.startswith(".")
            or domain.endswith(".")
            or any(c.isspace() for c in text)
            or len(text) > 254
        ):
            raise NormalizationError("not an e-mail address")
        return text

    try:
        expected = per_character(value)
    except NormalizationError:
        expected = "refused"
    try:
        got = normalize_email(value)
    except NormalizationError:
        got = "refused"
    assert got == expected
