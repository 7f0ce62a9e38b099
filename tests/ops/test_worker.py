"""A real Celery worker (see tests/conftest.py) shares the test database and the keys."""

from __future__ import annotations

import hashlib
import hmac

import celery
import django
import pytest
from django.conf import settings
from django.db import connection

from cdp import tasks
from cdp.tasks import key_fingerprint, selfcheck_report, worker_selfcheck


def test_key_fingerprint_is_first_eight_hex_digits_of_hmac_sha256() -> None:
    key = bytes(range(32))

    fingerprint = key_fingerprint(key)

    assert fingerprint == hmac.new(key, b"fingerprint", hashlib.sha256).hexdigest()[:8]
    assert len(fingerprint) == 8


def test_key_fingerprint_differs_for_different_keys() -> None:
    assert key_fingerprint(b"\x00" * 32) != key_fingerprint(b"\x01" * 32)


@pytest.mark.django_db
def test_selfcheck_report_describes_this_process_without_secrets() -> None:
    report = selfcheck_report()

    assert report == {
        "database": {"ok": True, "name": connection.settings_dict["NAME"]},
        "kek_id": settings.CDP_KEKS[0][0],
        "index_key_fingerprint": key_fingerprint(settings.CDP_INDEX_KEY),
        "audit_key_fingerprint": key_fingerprint(settings.CDP_AUDIT_KEY),
        "versions": {"celery": celery.__version__, "django": django.get_version()},
    }


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_reports_the_same_key_id_and_fingerprints_as_this_process(
    celery_worker_process,
) -> None:
    remote = worker_selfcheck.delay().get(timeout=30)

    local = selfcheck_report()
    assert remote["kek_id"] == local["kek_id"]
    assert remote["index_key_fingerprint"] == local["index_key_fingerprint"]
    assert remote["audit_key_fingerprint"] == local["audit_key_fingerprint"]
    assert remote["versions"] == local["versions"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_uses_the_test_database(celery_worker_process) -> None:
    remote = worker_selfcheck.delay().get(timeout=30)

    assert remote["database"] == {"ok": True, "name": connection.settings_dict["NAME"]}
    assert remote["database"]["name"].startswith("test_")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_selfcheck_command_exits_zero_when_worker_agrees(celery_worker_process, capsys) -> None:
    status = tasks.main(timeout=30)

    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[-1] == "ok: worker and this process share the database and keys"
