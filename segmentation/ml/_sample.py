"""One seeded sampler, so metrics, projections and k scans pick the same rows run after run."""

from __future__ import annotations

import numpy as np


def sample_indices(n: int, size: int | None, random_state: int) -> np.ndarray:
    """Sorted row indices of a seeded sample without replacement; all rows when n <= size."""
    if size is None or n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))
