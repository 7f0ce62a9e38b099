"""Personas per cluster and RFM scores with the usual segment names.

Persona labels come from fixed rules over cluster medians relative to the population medians, so
the same clustering always gets the same labels. A feature's level in a cluster is "high" above
1.25x the population median, "low" below 0.75x, else "mid" (when the population median is 0:
"high" above 0, else "mid"). Recency is days since the last order (lower is better) and tenure
days since the first. Rules, first match wins:

    recency low  and tenure low                       -> "New customers"
    recency not high, frequency high, monetary high   -> "High-value loyal"
    recency high and monetary high                    -> "Lapsed big spenders"
    recency high and frequency not low                -> "At risk"
    recency high                                      -> "Lapsed occasional"
    frequency high                                    -> "Frequent small spenders"
    monetary high                                     -> "Big-ticket occasional"
    frequency low or monetary low                     -> "Low-value occasional"
    otherwise                                         -> "Steady regulars"

A role not given, or naming no feature, counts as "mid". Two clusters with the same label get
" 2", " 3"... in order of size (largest first), so labels are unique within a run.

RFM scores are quintiles of the rank (ties broken by input order, as pandas'
`qcut(s.rank(method="first"), 5)`): F and M score 1 (lowest) to 5 (highest), R is reversed so the
most recent fifth scores 5. Segment names come from the R and F scores, in the widely used mapping
(R rows, F columns):

    R\\F  1            2                  3                  4                5
    5    New customers Potential loyalist Potential loyalist Champions        Champions
    4    Promising     Potential loyalist Potential loyalist Loyal            Loyal
    3    About to sleep About to sleep    Need attention     Loyal            Loyal
    2    Hibernating   Hibernating        At risk            At risk          Can't lose them
    1    Lost          Hibernating        At risk            At risk          Can't lose them

It is the common regular-expression map (`[1-2][1-2]` Hibernating, `[1-2][3-4]` At risk,
`[1-2]5` Can't lose them, `3[1-2]` About to sleep, `33` Need attention, `[3-4][4-5]` Loyal,
`41` Promising, `51` New customers, `[4-5][2-3]` Potential loyalist, `5[4-5]` Champions), with
R=1, F=1 (least recent and least frequent) split off as "Lost".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segmentation.ml.names import RF_GRID
from segmentation.ml.names import RFM_SEGMENTS as RFM_SEGMENTS  # re-exported
from segmentation.ml.names import rfm_segment as rfm_segment  # re-exported

HIGH = 1.25
LOW = 0.75
NOISE = -1


@dataclass(frozen=True)
class RfmRoles:
    """Which feature names play the RFM-like roles in the persona rules (None = absent)."""

    recency: str | None = "recency"
    frequency: str | None = "frequency"
    monetary: str | None = "monetary"
    tenure: str | None = "tenure"


@dataclass(frozen=True)
class Persona:
    """One cluster's profile, in the features' own units."""

    cluster: int
    label: str
    size: int
    share: float
    medians: dict[str, float | None]
    difference: dict[str, float | None]
    relative: dict[str, float | None]


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def level(value: float | None, population: float | None) -> str:
    """Return "high", "low" or "mid" for a cluster median against the population median, by the
    difference relative to the population median's size (so negative features work too)."""
    if value is None or population is None:
        return "mid"
    if population == 0:
        return "high" if value > 0 else "mid"
    relative = (value - population) / abs(population)
    if relative > HIGH - 1:
        return "high"
    if relative < LOW - 1:
        return "low"
    return "mid"


def persona_label(levels: dict[str, str]) -> str:
    """Apply the rule table in the module docstring to levels keyed by role."""
    r, f, m, t = (levels.get(x, "mid") for x in ("recency", "frequency", "monetary", "tenure"))
    if r == "low" and t == "low":
        return "New customers"
    if r != "high" and f == "high" and m == "high":
        return "High-value loyal"
    if r == "high" and m == "high":
        return "Lapsed big spenders"
    if r == "high" and f != "low":
        return "At risk"
    if r == "high":
        return "Lapsed occasional"
    if f == "high":
        return "Frequent small spenders"
    if m == "high":
        return "Big-ticket occasional"
    if f == "low" or m == "low":
        return "Low-value occasional"
    return "Steady regulars"


def personas(
    X: np.ndarray,
    labels: np.ndarray,
    feature_names: Sequence[str],
    *,
    roles: RfmRoles | None = None,
) -> list[Persona]:
    """Profile each cluster of raw (unscaled) features `X`; noise (-1) gets no persona.

    Medians ignore missing values; share is of all rows, noise included. Sorted by size, largest
    first, then cluster number.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    names = list(feature_names)
    if X.shape != (len(labels), len(names)):
        raise ValueError("X must have one row per label and one column per feature name")
    roles = roles or RfmRoles()
    role_of = {
        name: role
        for role, name in (
            ("recency", roles.recency),
            ("frequency", roles.frequency),
            ("monetary", roles.monetary),
            ("tenure", roles.tenure),
        )
        if name is not None and name in names
    }
    population = {name: _median(X[:, j]) for j, name in enumerate(names)}
    clusters = [int(c) for c in np.unique(labels) if c != NOISE]
    sizes = {c: int((labels == c).sum()) for c in clusters}
    clusters.sort(key=lambda c: (-sizes[c], c))
    seen: Counter[str] = Counter()
    out = []
    for c in clusters:
        rows = X[labels == c]
        medians = {name: _median(rows[:, j]) for j, name in enumerate(names)}
        difference: dict[str, float | None] = {}
        relative: dict[str, float | None] = {}
        for name in names:
            value, pop = medians[name], population[name]
            diff = None if value is None or pop is None else value - pop
            difference[name] = diff
            relative[name] = None if diff is None or pop == 0 else diff / abs(pop)
        levels = {role_of[name]: level(medians[name], population[name]) for name in role_of}
        base = persona_label(levels)
        seen[base] += 1
        label = base if seen[base] == 1 else f"{base} {seen[base]}"
        out.append(
            Persona(
                cluster=c,
                label=label,
                size=sizes[c],
                share=sizes[c] / len(labels),
                medians=medians,
                difference=difference,
                relative=relative,
            )
        )
    return out


def quintile_scores(values: np.ndarray) -> np.ndarray:
    """1..5 by rank (ties by input order), the same bins as pandas'
    `qcut(s.rank(method="first"), 5, labels=False) + 1`: rank r of n falls in bin
    ceil(5 (r - 1) / (n - 1)), at least 1. Integer arithmetic, so no float edge cases."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if np.isnan(values).any():
        raise ValueError("RFM values must not be missing")
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(n)  # r - 1
    if n == 1:
        return np.ones(1, dtype=np.int64)
    return np.maximum(1, (5 * ranks + (n - 2)) // (n - 1))


@dataclass(frozen=True)
class RfmScores:
    """Per-customer R, F, M quintile scores (1..5) and the R/F segment name."""

    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    segment: np.ndarray


def rfm_scores(recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> RfmScores:
    """Score customers given recency (days since last order), frequency and monetary value."""
    recency, frequency, monetary = (np.asarray(a) for a in (recency, frequency, monetary))
    if not recency.shape == frequency.shape == monetary.shape or recency.ndim != 1:
        raise ValueError("recency, frequency and monetary must be 1-D of the same length")
    r = 6 - quintile_scores(recency)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    grid = np.array(RF_GRID, dtype=object)
    segment = grid[r - 1, f - 1] if r.size else np.zeros(0, dtype=object)
    return RfmScores(r=r, f=f, m=m, segment=segment)
