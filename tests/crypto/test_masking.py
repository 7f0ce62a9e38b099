import pytest

from cdp.crypto.masking import mask_email, mask_phone, mask_text


@pytest.mark.parametrize(
    ("value", "masked"),
    [("jane@example.com", "j***@example.com"), ("", ""), (None, ""), ("no-at-sign", "***")],
)
def test_mask_email(value, masked):
    assert mask_email(value) == masked


def test_mask_phone_keeps_prefix_and_last_two_digits():
    assert mask_phone("+442079460958") == "+44********58"
    assert "7946" not in mask_phone("+442079460958")
    assert mask_phone("020 7946 0958") == "*********58"
    assert mask_phone("123") == "***"


def test_mask_text():
    assert mask_text("Jane") == "J***"
    assert mask_text("") == ""
