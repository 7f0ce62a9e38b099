"""The audit log's one table. Rows are written only by `cdp.audit.services.audit_record`."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from cdp.audit.chain import HASH_SIZE


class AuditEntry(models.Model):
    """One recorded action, linked to its predecessor by a keyed hash.

    The database refuses UPDATE, DELETE and TRUNCATE (migration 0002); `seq` is assigned by the
    service under the chain's lock, so the sequence has no gaps and a missing row shows.
    """

    seq = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.BinaryField(max_length=HASH_SIZE)
    hash = models.BinaryField(max_length=HASH_SIZE)

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        # Nobody may add, change or delete entries through Django's permission system.
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor"], name="audit_actor_idx"),
            models.Index(fields=["action"], name="audit_action_idx"),
            models.Index(fields=["at"], name="audit_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Exact(Length("prev_hash"), HASH_SIZE), name="audit_prev_hash_size"
            ),
            models.CheckConstraint(
                condition=Exact(Length("hash"), HASH_SIZE), name="audit_hash_size"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor}"

    def chain_payload(self) -> dict[str, Any]:
        """What the entry's hash covers: every field but the hashes themselves."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "details": self.details,
        }
