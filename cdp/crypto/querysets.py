"""A QuerySet that loads the data keys of a whole page of rows in one query."""

from __future__ import annotations

from typing import Any, Self

from django.db import models

from cdp.crypto.fields import EncryptedField
from cdp.crypto.subject_keys import subject_keys_load


class EncryptedQuerySet(models.QuerySet):
    """`.prefetch_subject_keys()` avoids one key lookup per row when a page decrypts values."""

    _prefetch_subject_keys = False

    def prefetch_subject_keys(self) -> Self:
        clone = self._chain()
        clone._prefetch_subject_keys = True
        return clone

    def _clone(self) -> Self:
        clone = super()._clone()
        clone._prefetch_subject_keys = self._prefetch_subject_keys
        return clone

    def _fetch_all(self) -> None:
        fetching = self._result_cache is None
        super()._fetch_all()
        if not (fetching and self._prefetch_subject_keys and self._result_cache):
            return
        if not isinstance(self._result_cache[0], models.Model):
            return
        subject_attrs = {
            f.subject_field for f in self.model._meta.fields if isinstance(f, EncryptedField)
        }
        subjects: set[Any] = set()
        for obj in self._result_cache:
            subjects.update(getattr(obj, attr) for attr in subject_attrs)
        subjects.discard(None)
        subject_keys_load(subjects)
