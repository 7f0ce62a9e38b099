"""Preprocessing in one scikit-learn Pipeline: impute, log skewed features, scale, clip.

Customer features (money, counts, days) are heavy-tailed and often missing; k-means and Gaussian
mixtures assume roughly comparable, symmetric scales. The steps, in order:

0. Values beyond +-1e15 are clamped (missing values stay missing): no customer feature is that
   large, and near the float maximum a median or a range overflows to infinity.
1. `SimpleImputer(strategy="median")`: a missing value takes the column median (an all-missing
   column becomes 0 rather than disappearing, so column positions stay stable).
2. `log1p` on the columns chosen at fit time: non-negative with sample skewness above the threshold.
   Values below 0 at transform time are floored at 0 first, so the log is always defined.
3. `RobustScaler`: median and inter-quartile range, so outliers do not set the scale.
4. Clipping to +-`clip` after scaling (and non-finite values to the bounds), so a handful of
   extreme customers cannot pull a centroid of their own.

Step 0 copies the caller's matrix; every later step works in place on that copy, so a million-row
run allocates one matrix instead of five.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, RobustScaler

from segmentation.ml._sample import sample_indices

DEFAULT_SKEW_THRESHOLD = 1.0
DEFAULT_CLIP = 5.0
MAGNITUDE_LIMIT = 1e15
SKEW_SAMPLE = 100_000


def bound_magnitude(X: np.ndarray, limit: float = MAGNITUDE_LIMIT) -> np.ndarray:
    """Clamp to [-limit, limit], keeping NaN for the imputer."""
    return np.clip(np.asarray(X, dtype=np.float64), -limit, limit)


def log1p_columns(X: np.ndarray, columns: Sequence[int], copy: bool = True) -> np.ndarray:
    """log1p of the given columns (floored at 0), others unchanged; module-level so it pickles.
    `copy=False` overwrites `X` (the pipeline passes its own copy)."""
    X = np.array(X, dtype=np.float64, copy=copy)
    if len(columns):
        cols = list(columns)
        X[:, cols] = np.log1p(np.maximum(X[:, cols], 0.0))
    return X


def clip_finite(X: np.ndarray, limit: float, copy: bool = True) -> np.ndarray:
    """Clip to [-limit, limit]; NaN becomes 0 and infinities the bounds, so output is finite.
    `copy=False` overwrites `X` (the pipeline passes its own copy)."""
    X = np.array(X, dtype=np.float64, copy=copy)
    np.nan_to_num(X, copy=False, nan=0.0, posinf=limit, neginf=-limit)
    return np.clip(X, -limit, limit, out=X)


def column_skewness(X: np.ndarray) -> np.ndarray:
    """Fisher-Pearson skewness per column over the observed (non-NaN) values; 0 when undefined
    (fewer than 3 values, a constant column, or overflow on absurd magnitudes)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros(X.shape[1])
    with np.errstate(all="ignore"):
        for j in range(X.shape[1]):
            col = X[:, j]
            col = col[~np.isnan(col)]
            if col.size < 3:
                continue
            centred = col - col.mean()
            m2 = np.mean(centred**2)
            m3 = np.mean(centred**3)
            skew = m3 / m2**1.5 if m2 > 0 else 0.0
            out[j] = skew if np.isfinite(skew) else 0.0
    return out


@dataclass(frozen=True)
class Preprocessing:
    """A fitted pipeline and what it decided, for the run's record."""

    pipeline: Pipeline
    feature_names: tuple[str, ...]
    log_features: tuple[str, ...]
    skewness: dict[str, float]
    skew_threshold: float
    clip: float


def build_pipeline(log_columns: Sequence[int], *, clip: float = DEFAULT_CLIP) -> Pipeline:
    """The unfitted pipeline for a given choice of log columns (also what benchmarks compare)."""
    return Pipeline(
        [
            ("bound", FunctionTransformer(bound_magnitude)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True, copy=False)),
            (
                "log",
                FunctionTransformer(
                    log1p_columns, kw_args={"columns": list(log_columns), "copy": False}
                ),
            ),
            ("scale", RobustScaler(copy=False)),
            ("clip", FunctionTransformer(clip_finite, kw_args={"limit": clip, "copy": False})),
        ]
    )


def preprocess_fit(
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    skew_threshold: float = DEFAULT_SKEW_THRESHOLD,
    clip: float = DEFAULT_CLIP,
) -> Preprocessing:
    """Choose the log-transformed features and fit the pipeline on `X` (rows = customers).

    A feature is log-transformed when all its observed values are >= 0 and its skewness (on a
    seeded sample of at most 100,000 rows) exceeds `skew_threshold`; the choice is recorded so a
    stored model replays it exactly.
    """
    return _fit(X, feature_names, skew_threshold=skew_threshold, clip=clip, transform=False)[0]


def preprocess_fit_transform(
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    skew_threshold: float = DEFAULT_SKEW_THRESHOLD,
    clip: float = DEFAULT_CLIP,
) -> tuple[Preprocessing, np.ndarray]:
    """`preprocess_fit` and the transformed `X` in one pass over the data (what a run needs)."""
    prep, Xt = _fit(X, feature_names, skew_threshold=skew_threshold, clip=clip, transform=True)
    assert Xt is not None
    return prep, Xt


def _fit(
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    skew_threshold: float,
    clip: float,
    transform: bool,
) -> tuple[Preprocessing, np.ndarray | None]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError("X must be 2-D with one column per feature name")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    # Skewness only decides which columns get a log, so a large seeded sample is enough.
    skewness = column_skewness(bound_magnitude(X[sample_indices(X.shape[0], SKEW_SAMPLE, 0)]))
    minimum = np.nan_to_num(np.fmin.reduce(X, axis=0), nan=np.inf)  # fmin skips NaN
    log_columns = [j for j in range(X.shape[1]) if minimum[j] >= 0 and skewness[j] > skew_threshold]
    pipeline = build_pipeline(log_columns, clip=clip)
    Xt = pipeline.fit_transform(X) if transform else None
    if not transform:
        pipeline.fit(X)
    names = tuple(feature_names)
    prep = Preprocessing(
        pipeline=pipeline,
        feature_names=names,
        log_features=tuple(names[j] for j in log_columns),
        skewness={name: float(s) for name, s in zip(names, skewness, strict=True)},
        skew_threshold=skew_threshold,
        clip=clip,
    )
    return prep, Xt
