"""Model fields that encrypt on save and decrypt on read, never failing open.

A value is sealed in `pre_save`, where the model instance gives the context the associated data
needs (table, column, subject, row), and opened lazily on first attribute access, so list pages
that never touch a column never decrypt it. Anything without that context (a filter on the value,
`QuerySet.update()`, `bulk_update()`) raises EncryptionContextError instead of writing plaintext
or a ciphertext bound to nothing. Only `isnull` lookups are allowed.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.utils.dateparse import parse_date

from cdp.crypto import aead
from cdp.crypto.errors import DecryptionError, EncryptionContextError, KeyDestroyedError
from cdp.crypto.subject_keys import cached_key, subject_key_get, subject_key_get_or_create


class Sealed:
    """A stored ciphertext, as read from the database or produced by pre_save."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __repr__(self) -> str:
        return f"<Sealed {len(self.blob)} bytes>"


class EncryptedAttribute(DeferredAttribute):
    """Decrypts on first access and caches the plaintext on the instance."""

    def __get__(self, instance: models.Model | None, cls: type | None = None) -> Any:
        if instance is None:
            return self
        data = instance.__dict__
        attname = self.field.attname
        value = data[attname] if attname in data else super().__get__(instance, cls)
        if value.__class__ is Sealed:
            value = data[attname] = self.field.open(instance, value)
        return value

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedField(models.Field):
    """Base class; subclasses define how a Python value becomes bytes and back."""

    descriptor_class = EncryptedAttribute
    empty_strings_allowed = False

    def __init__(self, *args: Any, subject_field: str = "id", **kwargs: Any) -> None:
        # The attribute on the instance that holds the data subject's id: "id" on Customer itself,
        # "customer_id" on rows that belong to a customer.
        self.subject_field = subject_field
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        if self.subject_field != "id":
            kwargs["subject_field"] = self.subject_field
        return name, path, args, kwargs

    def db_type(self, connection: Any) -> str:
        return "bytea"

    def get_internal_type(self) -> str:
        return "BinaryField"

    # --- serialisation, per subclass ---------------------------------------------------------
    def to_bytes(self, value: Any) -> bytes:
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:
        raise NotImplementedError

    # --- context -----------------------------------------------------------------------------
    _pk_attname: str | None = None

    def _set_pk_attname(self) -> str:
        self._pk_attname = self.model._meta.pk.attname
        return self._pk_attname

    def contribute_to_class(self, cls: type[models.Model], name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)
        # Constant per field: the table-and-column part of the associated data.
        self.where = aead.location(cls._meta.db_table, self.column)

    def _ids(self, instance: models.Model) -> tuple[Any, Any]:
        """The subject and row ids the ciphertext is bound to (read from __dict__: hot path)."""
        values = instance.__dict__
        subject = values.get(self.subject_field)
        row = values.get(self._pk_attname or self._set_pk_attname())
        if subject is None:
            raise EncryptionContextError(
                f"{instance._meta.label}.{self.name}: {self.subject_field} is not set, "
                "so there is no data subject to encrypt for"
            )
        if row is None:
            raise EncryptionContextError(
                f"{instance._meta.label}.{self.name}: the primary key must be assigned before "
                "saving, because the ciphertext is bound to its row"
            )
        return subject, row

    def seal(self, instance: models.Model, value: Any) -> Sealed | None:
        if value is None:
            return None
        plaintext = self.to_bytes(value)
        values = instance.__dict__
        subject = values.get(self.subject_field)
        row = values.get(self._pk_attname or self._set_pk_attname())
        if subject is None or row is None:
            self._ids(instance)  # raises the precise error
        # Hot path (every value written): the cached key and associated-data prefix are read
        # inline; the functions behind them run on a miss only.
        key = cached_key(subject) or subject_key_get_or_create(subject)
        prefix = key._prefixes.get(self.where) or key.aad_prefix(self.where)
        aad = prefix + (key.subject if row is subject else aead.id_bytes(row))
        return Sealed(aead.seal(key.cipher, key.header, plaintext, aad))

    def open(self, instance: models.Model, sealed: Sealed) -> Any:
        values = instance.__dict__
        subject = values.get(self.subject_field)
        row = values.get(self._pk_attname or self._set_pk_attname())
        if subject is None or row is None:
            self._ids(instance)  # raises the precise error
        key = cached_key(subject) or subject_key_get(subject)
        blob = sealed.blob
        prefix = key._prefixes.get(self.where) or key.aad_prefix(self.where)
        aad = prefix + (key.subject if row is subject else aead.id_bytes(row))
        try:
            data = aead.open_sealed(key.cipher, blob, aad)
        except (InvalidTag, ValueError):
            location = f"{self.model._meta.db_table}.{self.column} of row {row}"
            if aead.key_id_of(blob) != key.key_id:
                raise KeyDestroyedError(
                    f"{location} was sealed under a data key that no longer exists"
                ) from None
            raise DecryptionError(
                f"{location} failed authentication "
                "(tampered, copied from another row or column, or the wrong key)"
            ) from None
        try:
            return self.from_bytes(data)
        except (ValueError, UnicodeDecodeError, decimal.InvalidOperation):
            raise DecryptionError(
                f"{self.model._meta.db_table}.{self.column} of row {row} decrypted to a value of "
                "the wrong type"
            ) from None

    # --- Django hooks ------------------------------------------------------------------------
    def pre_save(self, model_instance: models.Model, add: bool) -> Sealed | None:
        value = model_instance.__dict__.get(self.attname)
        if value is None:
            return None
        if value.__class__ is Sealed:
            return value  # read and never opened: the stored ciphertext is still right
        return self.seal(model_instance, value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Sealed | None:
        if value is None:
            return None
        return Sealed(bytes(value))

    def get_prep_value(self, value: Any) -> Any:
        if value is None or isinstance(value, Sealed):
            return value
        raise EncryptionContextError(
            f"encrypted field {self.name!r} can only be written through Model.save() or "
            "bulk_create(); it cannot be filtered on or set by update()/bulk_update()"
        )

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        value = self.get_prep_value(value)
        if value is None:
            return None
        return connection.Database.Binary(value.blob)

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None

    def get_transform(self, name: str) -> Any:
        return None

    def value_to_string(self, obj: models.Model) -> str:
        raise EncryptionContextError(
            f"{self.name!r} is encrypted and is not serialised by dumpdata; "
            "use the data-subject export"
        )


class EncryptedTextField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"{self.name!r} takes str, not {type(value).__name__}")
        return value.encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8")

    def formfield(self, **kwargs: Any) -> Any:
        from django import forms

        return forms.CharField(required=not self.blank, **kwargs)


class EncryptedDateField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        if isinstance(value, str):
            parsed = parse_date(value)
            if parsed is None:
                raise ValueError(f"{self.name!r} takes an ISO date (YYYY-MM-DD)")
            value = parsed
        if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
            raise TypeError(f"{self.name!r} takes datetime.date, not {type(value).__name__}")
        return value.isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> datetime.date:
        return datetime.date.fromisoformat(data.decode("ascii"))


class EncryptedDecimalField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        if isinstance(value, float | bool):
            raise TypeError(f"{self.name!r} takes Decimal, int or str, not {type(value).__name__}")
        number = decimal.Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{self.name!r} takes a finite number")
        return str(number).encode("ascii")

    def from_bytes(self, data: bytes) -> decimal.Decimal:
        return decimal.Decimal(data.decode("ascii"))


class EncryptedJSONField(EncryptedField):
    """Any JSON value; `None` is SQL NULL, so JSON null cannot be stored at the top level."""

    def to_bytes(self, value: Any) -> bytes:
        return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False).encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))
