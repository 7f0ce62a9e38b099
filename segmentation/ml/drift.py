"""Population stability index (PSI): how far a score's or feature's distribution has moved.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the shares of the reference and the
current population in each bin. Bins are the reference's quantiles, so each holds about the same
share of the reference. Conventional reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25
significant shift (the default alert threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentation.ml.names import ALERT_THRESHOLD

_EPS = 1e-4  # share floor, so an empty bin gives a large but finite term


@dataclass(frozen=True)
class DriftResult:
    psi: float
    edges: list[float]
    expected_share: list[float]
    actual_share: list[float]

    @property
    def level(self) -> str:
        if self.psi < 0.1:
            return "stable"
        return "moderate" if self.psi < ALERT_THRESHOLD else "significant"

    def as_dict(self) -> dict[str, object]:
        return {
            "psi": self.psi,
            "level": self.level,
            "edges": self.edges,
            "expected_share": self.expected_share,
            "actual_share": self.actual_share,
        }


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (floored at a small epsilon)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10) -> DriftResult:
    """PSI of `actual` against the reference `expected` over the reference's quantile bins;
    ties collapse bins; a constant reference gets three bins (below, equal, above)."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    expected = expected[np.isfinite(expected)]
    actual = actual[np.isfinite(actual)]
    if len(expected) == 0 or len(actual) == 0:
        raise ValueError("both populations need at least one finite value")
    inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    if expected.min() == expected.max():
        # A constant reference: below, equal to and above it, so a moved constant still shows.
        value = float(expected[0])
        inner = np.array([value, np.nextafter(value, np.inf)])
    e_counts = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=len(inner) + 1)
    a_counts = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=len(inner) + 1)
    e_share = e_counts / e_counts.sum()
    a_share = a_counts / a_counts.sum()
    edges = [float(expected.min()), *inner.tolist(), float(expected.max())]
    return DriftResult(
        psi=psi_from_shares(e_share, a_share),
        edges=edges,
        expected_share=e_share.tolist(),
        actual_share=a_share.tolist(),
    )
