import numpy as np
import pytest

from segmentation.ml.drift import ALERT_THRESHOLD, psi, psi_from_shares


def test_same_distribution_is_stable():
    rng = np.random.default_rng(0)

    result = psi(rng.normal(size=20_000), rng.normal(size=20_000))

    assert result.psi < 0.01
    assert result.level == "stable"
    assert len(result.expected_share) == 10
    assert sum(result.expected_share) == pytest.approx(1.0)


def test_shifted_distribution_passes_the_alert_threshold():
    rng = np.random.default_rng(0)

    result = psi(rng.normal(size=20_000), rng.normal(loc=1.0, size=20_000))

    assert result.psi > ALERT_THRESHOLD
    assert result.level == "significant"


def test_psi_matches_a_hand_computation():
    expected = np.array([0.5, 0.5])
    actual = np.array([0.6, 0.4])

    hand = (0.6 - 0.5) * np.log(0.6 / 0.5) + (0.4 - 0.5) * np.log(0.4 / 0.5)
    assert psi_from_shares(expected, actual) == pytest.approx(hand)


def test_constant_reference_still_detects_a_moved_constant():
    assert psi(np.zeros(100), np.zeros(50)).psi == pytest.approx(0.0)
    assert psi(np.zeros(100), np.ones(50)).psi > ALERT_THRESHOLD


def test_empty_population_is_refused():
    with pytest.raises(ValueError):
        psi(np.array([]), np.array([1.0]))
