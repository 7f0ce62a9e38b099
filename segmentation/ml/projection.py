"""A 2-D PCA view of the preprocessed matrix for the admin's scatter chart.

Only a seeded sample is projected: a browser cannot draw a million points, and the same seed
shows the same points each time the page loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from segmentation.ml._sample import sample_indices

DEFAULT_SAMPLE = 5_000


@dataclass(frozen=True)
class Projection:
    """Row indices into the input, their 2-D coordinates, and the variance each axis explains."""

    indices: np.ndarray
    coords: np.ndarray
    explained_variance_ratio: tuple[float, float]


def project_2d(
    X: np.ndarray, *, sample_size: int = DEFAULT_SAMPLE, random_state: int = 0
) -> Projection:
    """PCA to two components over a seeded sample of the rows of `X` (already preprocessed).
    With a single feature, or a single row, the missing axis is 0."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError("X must be 2-D with at least one row")
    idx = sample_indices(X.shape[0], sample_size, random_state)
    Xs = X[idx]
    components = min(2, Xs.shape[0], Xs.shape[1])
    coords = np.zeros((len(idx), 2))
    ratio = [0.0, 0.0]
    if components > 0 and Xs.shape[0] > 1:
        pca = PCA(n_components=components, random_state=random_state)
        coords[:, :components] = pca.fit_transform(Xs)
        ratio[:components] = [float(v) for v in np.nan_to_num(pca.explained_variance_ratio_)]
    return Projection(indices=idx, coords=coords, explained_variance_ratio=(ratio[0], ratio[1]))
