"""Synthetic data for the ML core's tests: no database, no Django."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """600 points in 4 well-separated groups of 3 features."""
    X, y = make_blobs(
        n_samples=600,
        n_features=3,
        centers=4,
        cluster_std=0.6,
        center_box=(-10, 10),
        random_state=7,
    )
    return X, y
