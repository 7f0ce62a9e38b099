"""Writing to the audit log: the one way any package records who did what.

Call `audit_record` inside the transaction of the action it records. It joins that transaction, so
if the entry cannot be written the action rolls back with it: a failure to audit is a failure of
the action (no fail-open). Entries never carry personal data; refer to objects by id.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.audit.chain import GENESIS, advisory_lock, json_roundtrip, link_hash
from cdp.audit.models import AuditEntry
from cdp.logging import redact

AUDIT_CHAIN = "cdp.audit.AuditEntry"

SYSTEM = "system"
ANONYMOUS = "anonymous"


class AuditDetailsError(ValueError):
    """An entry would have carried something that looks like personal data.

    The message and `key` name where it was found (`details.contact.email`), never the value, so
    the error itself is safe to log.
    """

    def __init__(self, key: str, problem: str = "looks like personal data") -> None:
        self.key = key
        super().__init__(f"audit entry refused: {key} {problem}; record ids, not personal data")


def actor_for(user: Any) -> str:
    """The actor string for a Django user: `user:<pk>` if authenticated, else `anonymous`."""
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return ANONYMOUS


def actor_for_source(source_id: Any) -> str:
    """The actor string for a partner system or upload channel (`ingest.Source`)."""
    return f"source:{source_id}"


def _refuse_personal_data(value: Any, path: str) -> None:
    if isinstance(value, str):
        if redact(value) != value:
            raise AuditDetailsError(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if redact(key) != key:
                raise AuditDetailsError(path, "has a key that looks like personal data")
            _refuse_personal_data(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_personal_data(item, f"{path}[{index}]")


def audit_record(
    *,
    actor: str,
    action: str,
    object_type: str = "",
    object_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the audit log, linked to the current head by a keyed hash.

    Joins the caller's transaction (or opens one) and holds the chain's advisory lock until it
    ends, so concurrent writers queue and the chain never forks; `seq` is the head's plus one, so
    a rolled-back entry leaves no gap. Cost: one lock, one SELECT of the head, one INSERT.

    Raises AuditDetailsError when any field or any string in `details` looks like an e-mail
    address, phone number or IP address, and TypeError/ValueError when `details` is not plain
    JSON (datetimes, UUIDs and bytes are converted). Nothing is written in either case.
    """
    object_id = str(object_id)
    for name, value in (
        ("actor", actor),
        ("action", action),
        ("object_type", object_type),
        ("object_id", object_id),
    ):
        _refuse_personal_data(value, name)
    # Store exactly what is hashed: the JSON form that will read back from the database.
    stored_details = json_roundtrip({} if details is None else details)
    _refuse_personal_data(stored_details, "details")

    # No savepoint inside the caller's transaction (two round trips on every audited action):
    # if the entry cannot be written, the caller's transaction cannot commit either.
    with transaction.atomic(savepoint=False):
        advisory_lock(AUDIT_CHAIN)
        head = AuditEntry.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (head[0] + 1, bytes(head[1])) if head else (1, GENESIS)
        entry = AuditEntry(
            seq=seq,
            at=timezone.now(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=stored_details,
            prev_hash=prev_hash,
        )
        entry.hash = link_hash(settings.CDP_AUDIT_KEY, prev_hash, entry.chain_payload())
        entry.save(force_insert=True)
    return entry
