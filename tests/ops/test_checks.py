"""Deployment system checks: keys well formed and single-purpose, no development keys or DEBUG."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from django.core.checks import registry
from django.test import override_settings

from cdp.checks import check_encryption_keys, check_production_hygiene
from cdp.env import new_key, parse_keks


def _key() -> bytes:
    return os.urandom(32)


def _ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.fixture
def fresh_keys(tmp_path: Path):
    """Production-like settings: fresh keys, DEBUG off, no development key file."""
    with override_settings(
        CDP_KEKS=[("k2", _key()), ("k1", _key())],
        CDP_INDEX_KEY=_key(),
        CDP_AUDIT_KEY=_key(),
        SECRET_KEY=base64.urlsafe_b64encode(os.urandom(48)).decode(),
        DEBUG=False,
        VAR_DIR=tmp_path,
    ):
        yield


def test_checks_are_registered_with_the_security_tag() -> None:
    always = registry.registry.get_checks(include_deployment_checks=False)
    deploy = registry.registry.get_checks(include_deployment_checks=True)

    assert check_encryption_keys in always
    assert check_production_hygiene not in always
    assert check_production_hygiene in deploy
    assert "security" in check_encryption_keys.tags
    assert "security" in check_production_hygiene.tags


def test_fresh_distinct_keys_pass(fresh_keys) -> None:
    assert check_encryption_keys() == []
    assert check_production_hygiene() == []


def test_missing_keks_are_an_error(fresh_keys) -> None:
    with override_settings(CDP_KEKS=[]):
        assert _ids(check_encryption_keys()) == ["cdp.E001"]


def test_a_short_kek_is_an_error(fresh_keys) -> None:
    with override_settings(CDP_KEKS=[("k1", b"short")]):
        assert _ids(check_encryption_keys()) == ["cdp.E001"]


def test_a_short_index_key_is_an_error(fresh_keys) -> None:
    with override_settings(CDP_INDEX_KEY=b"\x00" * 16):
        assert _ids(check_encryption_keys()) == ["cdp.E002"]


def test_a_missing_audit_key_is_an_error(fresh_keys) -> None:
    with override_settings(CDP_AUDIT_KEY=None):
        assert _ids(check_encryption_keys()) == ["cdp.E003"]


def test_index_and_audit_keys_must_differ(fresh_keys) -> None:
    shared = _key()
    with override_settings(CDP_INDEX_KEY=shared, CDP_AUDIT_KEY=shared):
        messages = check_encryption_keys()

    assert _ids(messages) == ["cdp.E004"]
    assert "CDP_INDEX_KEY" in messages[0].msg
    assert "CDP_AUDIT_KEY" in messages[0].msg


def test_index_key_equal_to_a_kek_is_an_error_naming_the_kek_id_not_the_key(fresh_keys) -> None:
    kek = _key()
    with override_settings(CDP_KEKS=[("k2", kek)], CDP_INDEX_KEY=kek):
        messages = check_encryption_keys()

    assert _ids(messages) == ["cdp.E005"]
    assert messages[0].msg == (
        "CDP_INDEX_KEY is the same key as CDP_KEKS key id 'k2'; each needs its own."
    )


def test_the_same_kek_under_two_ids_is_an_error(fresh_keys) -> None:
    kek = _key()
    with override_settings(CDP_KEKS=[("k2", kek), ("k1", kek)]):
        assert _ids(check_encryption_keys()) == ["cdp.E006"]


def test_development_keys_and_secret_are_refused_by_name(tmp_path: Path) -> None:
    dev = {
        "SECRET_KEY": "dev-insecure-" + new_key(),
        "CDP_KEKS": f"dev1:{new_key()}",
        "CDP_INDEX_KEY": new_key(),
        "CDP_AUDIT_KEY": new_key(),
    }
    (tmp_path / "dev-keys.json").write_text(json.dumps(dev))
    with override_settings(
        VAR_DIR=tmp_path,
        SECRET_KEY=dev["SECRET_KEY"],
        CDP_KEKS=parse_keks("CDP_KEKS", dev["CDP_KEKS"]),
        CDP_INDEX_KEY=base64.urlsafe_b64decode(dev["CDP_INDEX_KEY"]),
        CDP_AUDIT_KEY=base64.urlsafe_b64decode(dev["CDP_AUDIT_KEY"]),
        DEBUG=False,
    ):
        messages = check_production_hygiene()

    assert [(m.id, m.msg) for m in messages] == [
        ("cdp.E007", "CDP_KEKS (dev1) is a development key from var/dev-keys.json."),
        ("cdp.E007", "CDP_INDEX_KEY is a development key from var/dev-keys.json."),
        ("cdp.E007", "CDP_AUDIT_KEY is a development key from var/dev-keys.json."),
        ("cdp.E008", "SECRET_KEY is a development key."),
    ]
    for message in messages:
        for value in dev.values():
            assert value not in message.msg


@pytest.mark.parametrize("secret", ["django-insecure-abc", "dev-insecure-abc"])
def test_insecure_secret_key_prefixes_are_refused(fresh_keys, secret: str) -> None:
    with override_settings(SECRET_KEY=secret):
        assert _ids(check_production_hygiene()) == ["cdp.E008"]


def test_debug_in_a_deployment_is_an_error(fresh_keys) -> None:
    with override_settings(DEBUG=True):
        assert _ids(check_production_hygiene()) == ["cdp.E009"]
