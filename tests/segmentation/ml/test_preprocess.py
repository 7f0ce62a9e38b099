import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segmentation.ml.preprocess import build_pipeline, column_skewness, preprocess_fit


def test_skewed_non_negative_features_are_log_transformed_and_recorded():
    rng = np.random.default_rng(0)
    monetary = rng.lognormal(3, 1.5, 1000)  # heavy right tail, >= 0
    symmetric = rng.normal(0, 1, 1000)
    negative_skewed = -rng.lognormal(3, 1.5, 1000)  # skewed but negative: log undefined
    X = np.column_stack([monetary, symmetric, negative_skewed])

    prep = preprocess_fit(X, ["monetary", "symmetric", "neg"], skew_threshold=1.0)

    assert prep.log_features == ("monetary",)
    assert prep.skewness["monetary"] > 1.0
    assert abs(prep.skewness["symmetric"]) < 0.5
    assert prep.pipeline.named_steps["log"].kw_args == {"columns": [0], "copy": False}


def test_pipeline_imputes_median_scales_robustly_and_clips():
    X = np.array([[1.0], [2.0], [3.0], [np.nan], [4.0], [5.0], [1000.0]])

    prep = preprocess_fit(X, ["x"], skew_threshold=100.0, clip=3.0)
    out = prep.pipeline.transform(X)

    # The missing value takes the observed median 3.5; the imputed column [1, 2, 3, 3.5, 4, 5,
    # 1000] has median 3.5 and quartiles 2.5 and 4.5, so x -> (x - 3.5) / 2, then clip to +-3.
    assert out[:, 0].tolist() == [-1.25, -0.75, -0.25, 0.0, 0.25, 0.75, 3.0]
    assert prep.log_features == ()


def test_log_step_floors_negative_values_seen_after_fit():
    prep = preprocess_fit(np.array([[0.0], [1.0], [1.0], [2.0], [50.0], [400.0]]), ["m"])
    assert prep.log_features == ("m",)

    out = prep.pipeline.transform(np.array([[-5.0], [np.nan]]))

    assert np.isfinite(out).all()


def test_skewness_is_zero_when_undefined():
    X = np.array([[1.0, np.nan, 5.0], [1.0, np.nan, np.nan], [1.0, 2.0, np.nan]])
    assert column_skewness(X).tolist() == [0.0, 0.0, 0.0]


def test_build_pipeline_matches_fitted_choice():
    X = np.random.default_rng(1).lognormal(0, 2, (200, 2))
    prep = preprocess_fit(X, ["a", "b"])
    raw = build_pipeline([0, 1]).fit(X)
    assert prep.log_features == ("a", "b")
    np.testing.assert_array_equal(prep.pipeline.transform(X), raw.transform(X))


finite_or_nan = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.just(float("nan")))


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 25), st.integers(1, 5)),
        elements=finite_or_nan,
    )
)
def test_preprocessing_never_produces_nan_or_inf(X):
    names = [f"f{j}" for j in range(X.shape[1])]

    prep = preprocess_fit(X, names)
    out = prep.pipeline.transform(X)

    assert out.shape == X.shape
    assert np.isfinite(out).all()


def test_transform_leaves_the_callers_matrix_untouched():
    X = np.array([[1.0, np.nan], [2.0, 5.0], [400.0, 7.0], [3.0, 1.0]])
    before = X.copy()
    prep = preprocess_fit(X, ["a", "b"])

    prep.pipeline.transform(X)

    np.testing.assert_array_equal(X, before)
