"""A/B experiments: deterministic assignment, per-variant results, uplift and an SRM check.

Assignment hashes (experiment key, customer id) with SHA-256, so a customer gets the same variant
on every request and on every machine without storing anything first, and two experiments with
different keys split the same customers independently. A holdout share is carved off first and
never sees any variant (it measures the effect of the whole programme).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOLDOUT = "holdout"
SRM_P_THRESHOLD = 0.001  # the usual threshold: a genuine mismatch, not noise


def bucket(experiment_key: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by the pair: the first 8 bytes of SHA-256."""
    digest = hashlib.sha256(f"{experiment_key}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(
    experiment_key: str,
    customer_id: str,
    variants: Sequence[tuple[str, float]],
    *,
    holdout: float = 0.0,
) -> str:
    """The variant name for this customer: HOLDOUT with probability `holdout`, otherwise a
    variant with probability proportional to its weight."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    if not 0.0 <= holdout < 1.0:
        raise ValueError("holdout must be in [0, 1)")
    total = float(sum(w for _, w in variants))
    if total <= 0 or any(w < 0 for _, w in variants):
        raise ValueError("variant weights must be non-negative and not all zero")
    u = bucket(experiment_key, customer_id)
    if u < holdout:
        return HOLDOUT
    v = (u - holdout) / (1.0 - holdout) * total
    cumulative = 0.0
    for name, weight in variants:
        cumulative += weight
        if v < cumulative:
            return name
    return variants[-1][0]


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    mismatch: bool
    expected: dict[str, float]


def sample_ratio_mismatch(
    observed: Mapping[str, int], weights: Mapping[str, float], *, threshold: float = SRM_P_THRESHOLD
) -> SrmResult:
    """Chi-squared goodness of fit of the observed group sizes against the planned split; a
    p-value below `threshold` means the assignment or the logging is broken and the results
    must not be trusted."""
    from scipy import stats  # only results pages need SciPy; serving assigns without it

    names = list(weights)
    total_w = float(sum(weights.values()))
    n = sum(observed.get(name, 0) for name in names)
    expected = {name: n * weights[name] / total_w for name in names}
    if n == 0:
        return SrmResult(0.0, 1.0, False, expected)
    chi2, p = stats.chisquare(
        [observed.get(name, 0) for name in names], [expected[name] for name in names]
    )
    return SrmResult(float(chi2), float(p), bool(p < threshold), expected)


@dataclass(frozen=True)
class Uplift:
    """Treatment vs control conversion: absolute difference with its confidence interval
    (unpooled normal approximation), relative uplift, and the two-sided z-test p-value."""

    control_rate: float
    treatment_rate: float
    absolute: float
    relative: float | None
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float

    def as_dict(self) -> dict[str, float | None]:
        return {
            "control_rate": self.control_rate,
            "treatment_rate": self.treatment_rate,
            "absolute": self.absolute,
            "relative": self.relative,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "confidence": self.confidence,
        }


def uplift(
    *,
    control_conversions: int,
    control_exposed: int,
    treatment_conversions: int,
    treatment_exposed: int,
    confidence: float = 0.95,
) -> Uplift:
    """Difference of conversion rates, treatment minus control.

    CI: d +- z * sqrt(p1(1-p1)/n1 + p0(1-p0)/n0); p-value: pooled two-proportion z-test."""
    from scipy import stats  # only results pages need SciPy; serving assigns without it

    if control_exposed <= 0 or treatment_exposed <= 0:
        raise ValueError("both groups need at least one exposed customer")
    p0 = control_conversions / control_exposed
    p1 = treatment_conversions / treatment_exposed
    diff = p1 - p0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(p1 * (1 - p1) / treatment_exposed + p0 * (1 - p0) / control_exposed)
    pooled = (control_conversions + treatment_conversions) / (control_exposed + treatment_exposed)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / control_exposed + 1 / treatment_exposed))
    p_value = 1.0 if se_pooled == 0 else float(2 * stats.norm.sf(abs(diff) / se_pooled))
    return Uplift(
        control_rate=p0,
        treatment_rate=p1,
        absolute=diff,
        relative=(diff / p0) if p0 > 0 else None,
        ci_low=diff - z * se,
        ci_high=diff + z * se,
        p_value=p_value,
        confidence=confidence,
    )
