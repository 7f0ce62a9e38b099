"""Reads for ingestion: which source a write key belongs to, and which identifiers are
suppressed."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from cdp.ingest.keys import write_key_hash
from cdp.ingest.models import Source, Suppression


def source_for_write_key(key: str) -> Source | None:
    """The source whose current key, or previous key within its grace period, is `key`.

    One indexed query. Disabled and revoked sources are returned too: the caller answers 403
    for them (a known but unusable key), 401 only for an unknown one.
    """
    digest = write_key_hash(key)
    # Raw SQL, the same query the ORM would build: every tracking request runs it, and
    # compiling the ORM query cost more than executing it.
    rows = Source.objects.raw(
        f"SELECT * FROM {Source._meta.db_table} "  # noqa: S608 (constant)
        "WHERE key_hash = %s OR (previous_key_hash = %s AND previous_key_valid_until > %s) "
        "ORDER BY created_at DESC LIMIT 1",
        [digest, digest, timezone.now()],
    )
    return next(iter(rows), None)


def suppressed_indexes(indexes: Iterable[bytes]) -> set[bytes]:
    """The blind indexes among `indexes` that are on the suppression list (one query)."""
    wanted = list({bytes(i) for i in indexes})
    if not wanted:
        return set()
    from cdp.db import raw_cursor

    with raw_cursor() as cursor:
        cursor.execute(
            f"SELECT value_index FROM {Suppression._meta.db_table} "  # noqa: S608 (constant)
            "WHERE value_index = ANY(%b::bytea[])",
            [wanted],
        )
        return {bytes(row[0]) for row in cursor}
