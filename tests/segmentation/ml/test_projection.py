import numpy as np
import pytest

from segmentation.ml.projection import project_2d


def test_projection_is_two_dimensional_on_a_seeded_sample(blobs):
    X, _ = blobs

    a = project_2d(X, sample_size=100, random_state=5)
    b = project_2d(X, sample_size=100, random_state=5)

    assert a.coords.shape == (100, 2)
    assert len(set(a.indices.tolist())) == 100 and a.indices.max() < 600
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.explained_variance_ratio[0] >= a.explained_variance_ratio[1] > 0
    assert sum(a.explained_variance_ratio) <= 1.0 + 1e-12


def test_projection_keeps_all_rows_when_fewer_than_the_sample():
    X = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [0.0, 1.0, 1.0]])

    result = project_2d(X)

    assert result.indices.tolist() == [0, 1, 2]
    assert sum(result.explained_variance_ratio) == pytest.approx(1.0)  # 3 points span a plane


def test_projection_of_a_single_feature_pads_the_second_axis():
    result = project_2d(np.array([[1.0], [2.0], [4.0]]))

    assert result.coords[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert result.explained_variance_ratio == (1.0, 0.0)
