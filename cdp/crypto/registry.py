"""The one place that lists every field holding personal data.

Export and erasure read this registry, so a field cannot be missed by them; a system check
fails when a model has an encrypted field that is not registered here. Each app declares its
fields in a `personal_data.py` module, imported when the app registry is ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.apps import apps
from django.db import models


class Category(StrEnum):
    CONTACT = "contact"
    IDENTITY = "identity"
    DEMOGRAPHIC = "demographic"
    LOCATION = "location"
    BEHAVIOURAL = "behavioural"
    FREE_TEXT = "free_text"
    BLIND_INDEX = "blind_index"


@dataclass(frozen=True)
class PersonalField:
    model: str  # "app_label.ModelName"
    field: str
    category: Category
    sensitive: bool = False
    description: str = ""

    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)


_registry: dict[tuple[str, str], PersonalField] = {}


def register(
    model: str, field: str, *, category: Category, sensitive: bool = False, description: str = ""
) -> PersonalField:
    entry = PersonalField(model, field, Category(category), sensitive, description)
    _registry[(model.lower(), field)] = entry
    return entry


def personal_fields() -> list[PersonalField]:
    return sorted(_registry.values(), key=lambda f: (f.model, f.field))


def personal_fields_of(model: type[models.Model]) -> list[PersonalField]:
    label = model._meta.label_lower
    return [f for (m, _), f in sorted(_registry.items()) if m == label]


def is_registered(model: type[models.Model], field: str) -> bool:
    return (model._meta.label_lower, field) in _registry
