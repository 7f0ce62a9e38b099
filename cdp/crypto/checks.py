"""System checks: every encrypted field is registered as personal data, and vice versa."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import FieldDoesNotExist

from cdp.crypto.fields import EncryptedField
from cdp.crypto.registry import is_registered, personal_fields


@register("cdp")
def check_personal_data_registry(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for model in apps.get_models():
        for field in model._meta.local_fields:
            if isinstance(field, EncryptedField) and not is_registered(model, field.name):
                errors.append(
                    Error(
                        f"{model._meta.label}.{field.name} is encrypted but not registered as "
                        "personal data, so export and erasure would miss it",
                        hint="Register it in the app's personal_data.py.",
                        obj=field,
                        id="cdp.E101",
                    )
                )
    for entry in personal_fields():
        try:
            entry.model_class()._meta.get_field(entry.field)
        except (LookupError, FieldDoesNotExist):
            errors.append(
                Error(
                    f"personal-data registry names {entry.model}.{entry.field}, "
                    "which does not exist",
                    id="cdp.E102",
                )
            )
    return errors
