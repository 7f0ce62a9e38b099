"""Operational tasks: proof that a worker sees the same database and keys as the web process.

Run `python -m cdp.tasks` to compare this process with a live worker; it exits non-zero when they
differ or no worker answers.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from typing import Any

import celery
import django
from celery import shared_task
from django.conf import settings
from django.db import connection


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible tag of a key: equal tags mean equal keys, the key stays secret."""
    return hmac.new(key, b"fingerprint", hashlib.sha256).hexdigest()[:8]


def selfcheck_report() -> dict[str, Any]:
    """What this process sees: database, key ids and fingerprints, versions. No secrets."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1, current_database()")
        one, database = cursor.fetchone()
    return {
        "database": {"ok": one == 1, "name": database},
        "kek_id": settings.CDP_KEKS[0][0],
        "index_key_fingerprint": key_fingerprint(settings.CDP_INDEX_KEY),
        "audit_key_fingerprint": key_fingerprint(settings.CDP_AUDIT_KEY),
        "versions": {"celery": celery.__version__, "django": django.get_version()},
    }


@shared_task(name="cdp.tasks.worker_selfcheck", time_limit=30, soft_time_limit=20)
def worker_selfcheck() -> dict[str, Any]:
    """The worker's view, for comparison with the caller's `selfcheck_report()`."""
    return selfcheck_report()


COMPARED = ("kek_id", "index_key_fingerprint", "audit_key_fingerprint")


def main(timeout: float = 30) -> int:
    """Ask a worker for its report and compare it with ours; 0 when keys and database agree."""
    local = selfcheck_report()
    try:
        remote = worker_selfcheck.delay().get(timeout=timeout)
    except Exception as exc:
        print(f"no worker answered within {timeout:g}s: {type(exc).__name__}", file=sys.stderr)
        return 2
    mismatched = [k for k in COMPARED if local[k] != remote[k]]
    if local["database"]["name"] != remote["database"]["name"]:
        mismatched.append("database")
    for label, report in (("this process", local), ("worker", remote)):
        print(
            f"{label}: database {report['database']['name']}, kek {report['kek_id']}, "
            f"index key {report['index_key_fingerprint']}, "
            f"audit key {report['audit_key_fingerprint']}, "
            f"celery {report['versions']['celery']}, django {report['versions']['django']}"
        )
    if mismatched:
        print("MISMATCH: " + ", ".join(mismatched), file=sys.stderr)
        return 1
    print("ok: worker and this process share the database and keys")
    return 0


if __name__ == "__main__":
    django.setup()
    from cdp import tasks

    sys.exit(tasks.main())
