"""The one place that lists every field holding personal data.

Export and erasure read this registry, so a field cannot be missed by them; a system check
fails when a model has an encrypted field that is not registered here. Each app declares its
fields in a `personal_data.py` module, imported when the app registry is ready.

Erasure policy and export labels (read by `cdp.privacy`, declared by any app without importing it):

    erasure_policy("billing.Invoice", ErasureAction.RETAIN,
                   reason="Invoices are kept ten years for tax law", basis="Art. 17(3)(b)",
                   anonymise={"customer_note": None})
    export_label("segments.SegmentMembership", title="Segment memberships",
                 explanation="Membership is decided by the segment's rule ...", profiling=True)

Every concrete model with a ForeignKey/OneToOne to `profiles.Customer` is subject data. Without a
declaration its rows are deleted on erasure (`DELETE`, the default). `ANONYMISE` keeps the rows,
detaches them from the subject (the foreign key must be nullable) and overwrites the named
fields (encrypted fields are always nulled); `RETAIN` does the same but is recorded on the
erasure certificate as an Art. 17(3) exception with its reason. A model without a foreign key
to the customer that still holds its id or blind indexes by design (an append-only ledger, the
suppression list) declares `RETAIN` so the residue scan lists it as an exception, not residue.
`export_label` gives a model a readable title in the access package, an explanation of how its
rows were decided (features, segments, clusters, scores) and marks profiling (GDPR Art. 22).
`export_explainer` adds a per-subject explanation section to the package (for example each score
with what its model is for and uses, from the Art. 22 model inventory), computed by the declaring
app, so the package explains decisions without `cdp.privacy` importing that app.
`erasure_scrubber` declares a function that removes the subject's ids from places without a
foreign key to the customer (for example a pending webhook delivery's list of customer ids);
erasure calls it inside its transaction, before the residue scan.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


class ErasureAction(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    RETAIN = "retain"


@dataclass(frozen=True)
class ErasurePolicy:
    model: str  # "app_label.ModelName"
    action: ErasureAction
    reason: str = ""
    basis: str = ""
    anonymise: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class ExportLabel:
    model: str
    title: str
    explanation: str = ""
    profiling: bool = False


_policies: dict[str, ErasurePolicy] = {}
_labels: dict[str, ExportLabel] = {}


def erasure_policy(
    model: str,
    action: ErasureAction | str = ErasureAction.DELETE,
    *,
    reason: str = "",
    basis: str = "",
    anonymise: dict[str, object] | None = None,
) -> ErasurePolicy:
    """Declare how erasure treats a model's rows (see the module docstring)."""
    action = ErasureAction(action)
    if action == ErasureAction.RETAIN and not reason.strip():
        raise ValueError(f"{model}: a retained model needs the reason it must be kept")
    entry = ErasurePolicy(model, action, reason, basis, tuple(sorted((anonymise or {}).items())))
    _policies[model.lower()] = entry
    return entry


def erasure_policy_of(model: type[models.Model] | str) -> ErasurePolicy:
    label = model if isinstance(model, str) else model._meta.label
    return _policies.get(label.lower()) or ErasurePolicy(label, ErasureAction.DELETE)


def erasure_policies() -> list[ErasurePolicy]:
    return sorted(_policies.values(), key=lambda p: p.model.lower())


def export_label(
    model: str, *, title: str, explanation: str = "", profiling: bool = False
) -> ExportLabel:
    """Declare how a model appears in the access package (title, explanation, profiling)."""
    entry = ExportLabel(model, title, explanation, profiling)
    _labels[model.lower()] = entry
    return entry


def export_label_of(model: type[models.Model]) -> ExportLabel:
    label = model._meta.label
    return _labels.get(label.lower()) or ExportLabel(
        label, str(model._meta.verbose_name_plural).capitalize()
    )


def export_labels() -> list[ExportLabel]:
    return sorted(_labels.values(), key=lambda p: p.model.lower())


@dataclass(frozen=True)
class ExportExplainer:
    key: str
    title: str
    explain: Callable[[uuid.UUID], list[dict[str, Any]]]


_explainers: dict[str, ExportExplainer] = {}


def export_explainer(
    key: str, *, title: str, explain: Callable[[uuid.UUID], list[dict[str, Any]]]
) -> ExportExplainer:
    """Declare a section of the access package that explains decisions about one customer.

    `explain(customer_id)` returns rows of plain JSON values; it is called once per profile of
    the subject when a package is built.
    """
    entry = ExportExplainer(key, title, explain)
    _explainers[key] = entry
    return entry


def export_explainers() -> list[ExportExplainer]:
    return sorted(_explainers.values(), key=lambda e: e.key)


@dataclass(frozen=True)
class ErasureScrubber:
    key: str
    scrub: Callable[[list[uuid.UUID]], int]


_scrubbers: dict[str, ErasureScrubber] = {}


def erasure_scrubber(key: str, scrub: Callable[[list[uuid.UUID]], int]) -> ErasureScrubber:
    """Declare `scrub(customer_ids) -> rows changed`, run by every erasure (see the docstring)."""
    entry = ErasureScrubber(key, scrub)
    _scrubbers[key] = entry
    return entry


def erasure_scrubbers() -> list[ErasureScrubber]:
    return sorted(_scrubbers.values(), key=lambda e: e.key)


def is_registered(model: type[models.Model], field: str) -> bool:
    return (model._meta.label_lower, field) in _registry
