"""Purposes and their versions: a change of wording is a new version, kept forever."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from cdp.audit.services import audit_record
from consent.errors import (
    InvalidDecision,
)
from consent.models import (
    Coverage,
    DefaultRule,
    LegalBasis,
    Purpose,
    PurposeVersion,
)

_VERSIONED_FIELDS = ("title", "description", "notice_text")

# --- purposes ----------------------------------------------------------------------------------


def notice_hash(text: str) -> str:
    """SHA-256 of the notice text (newlines normalised): anyone holding the text can check it."""
    normalised = text.replace("\r\n", "\n").strip()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _clean_covers(covers: Iterable[str]) -> list[str]:
    values = sorted(set(covers))
    unknown = [c for c in values if c not in Coverage.values]
    if unknown:
        raise InvalidDecision(f"unknown coverage: {', '.join(unknown)}", field="covers")
    return values


def purpose_create(
    *,
    code: str,
    title: str,
    notice_text: str,
    actor: str,
    description: str = "",
    legal_basis: str = LegalBasis.CONSENT,
    covers: Iterable[str] = (),
    ccpa_default: str = DefaultRule.OPT_OUT,
    other_default: str = DefaultRule.OPT_IN,
    is_active: bool = True,
) -> Purpose:
    """Create a purpose at version 1 and keep that version's wording."""
    purpose = Purpose(
        code=code,
        title=title,
        description=description,
        notice_text=notice_text,
        legal_basis=legal_basis,
        covers=_clean_covers(covers),
        ccpa_default=ccpa_default,
        other_default=other_default,
        is_active=is_active,
        version=1,
        notice_hash=notice_hash(notice_text),
    )
    purpose.full_clean()
    with transaction.atomic():
        purpose.save()
        _purpose_version_save(purpose, actor)
        audit_record(
            actor=actor,
            action="consent.purpose_create",
            object_type="consent.purpose",
            object_id=code,
            details={"version": 1, "covers": purpose.covers},
        )
    return purpose


def purpose_update(*, purpose: Purpose, actor: str, **changes: Any) -> Purpose:
    """Change a purpose; a change to its wording (title, description, notice) is a new version.

    Consents already given keep pointing at the version they were given to; new decisions get
    the new version unless they name another.
    """
    allowed = {*_VERSIONED_FIELDS, "legal_basis", "covers", "ccpa_default", "other_default"}
    allowed.add("is_active")
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise TypeError(f"purpose_update() got unexpected fields: {', '.join(unknown)}")
    if "covers" in changes:
        changes["covers"] = _clean_covers(changes["covers"])
    with transaction.atomic():
        current = Purpose.objects.select_for_update().get(pk=purpose.pk)
        changed = sorted(k for k, v in changes.items() if getattr(current, k) != v)
        for name in changed:
            setattr(current, name, changes[name])
        new_version = any(name in _VERSIONED_FIELDS for name in changed)
        if new_version:
            current.version += 1
            current.notice_hash = notice_hash(current.notice_text)
        current.full_clean()
        current.save()
        if new_version:
            _purpose_version_save(current, actor)
        if changed:
            audit_record(
                actor=actor,
                action="consent.purpose_update",
                object_type="consent.purpose",
                object_id=current.code,
                details={"fields": changed, "version": current.version},
            )
    return current


def _purpose_version_save(purpose: Purpose, actor: str) -> None:
    PurposeVersion.objects.create(
        purpose=purpose,
        version=purpose.version,
        title=purpose.title,
        description=purpose.description,
        notice_text=purpose.notice_text,
        notice_hash=purpose.notice_hash,
        created_by=actor,
    )
