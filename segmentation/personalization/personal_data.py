"""Subject data of personalization: no encrypted fields; scores, recommendations and experiment
assignments are profiling results (customer FK, CASCADE, deleted on erasure by default)."""

import uuid
from typing import Any

from cdp.crypto import registry

registry.export_label(
    "personalization.CustomerScore",
    title="Predictive scores",
    explanation=(
        "A model estimated how likely you are to stop buying (churn), to buy soon "
        "(propensity) or how much you may spend; the model inventory says what each model "
        "uses. Scores exist only while your consent allows profiling."
    ),
    profiling=True,
)
registry.export_label(
    "personalization.Recommendation",
    title="Product recommendations",
    explanation=(
        "Products recommended to you from your purchases, cart additions and views, while "
        "your consent allows personalization."
    ),
    profiling=True,
)
registry.export_label(
    "personalization.Assignment",
    title="Experiment groups",
    explanation="Which variant of a test you were placed in, and when you first saw it.",
    profiling=True,
)


def _score_explanations(customer_id: uuid.UUID) -> list[dict[str, Any]]:
    from segmentation.personalization.selectors import customer_score_explanations

    return customer_score_explanations(customer_id)


# The access report explains each score from the Art. 22 model inventory (issue: "the access
# report explains a customer's scores from it").
registry.export_explainer(
    "personalization.scores",
    title="How your predictive scores were made",
    explain=_score_explanations,
)
