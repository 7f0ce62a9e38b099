import pytest

from cdp.crypto.blind_index import (
    blind_index,
    email_index,
    normalize_email,
    normalize_phone,
    phone_index,
)
from cdp.crypto.errors import NormalizationError


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("  jane+tag@example.co.uk\t", "jane+tag@example.co.uk"),
    ],
)
def test_emails_are_normalised(raw, normalized):
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["", "jane", "jane@", "@example.com", "jane@example", "ja ne@example.com", "jane@.com"]
)
def test_malformed_emails_are_refused_without_echoing_the_value(raw):
    with pytest.raises(NormalizationError) as excinfo:
        normalize_email(raw)
    assert raw.strip() == "" or raw not in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("+1 415 555 0132", "FR", "+14155550132"),
    ],
)
def test_phones_are_normalised_to_e164(raw, region, e164):
    assert normalize_phone(raw, default_region=region) == e164


@pytest.mark.parametrize(
    ("raw", "region"), [("12", "GB"), ("not a phone", "US"), ("020 7946 0958", None)]
)
def test_invalid_phones_are_refused(raw, region):
    with pytest.raises(NormalizationError):
        normalize_phone(raw, default_region=region)


def test_equal_identifiers_share_an_index_whatever_their_spelling():
    assert email_index("Jane@Example.com ") == email_index("jane@example.com")
    assert phone_index("020 7946 0958", default_region="GB") == phone_index("+442079460958")


def test_domains_get_different_keys():
    assert blind_index("12345", domain="user_id") != blind_index("12345", domain="anonymous_id")


def test_index_depends_on_the_configured_key(settings):
    before = email_index("jane@example.com")
    settings.CDP_INDEX_KEY = b"\x09" * 32
    assert email_index("jane@example.com") != before
    assert len(before) == 32
