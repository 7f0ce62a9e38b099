import uuid

import pytest
from scipy import stats

from segmentation.ml.experiments import (
    HOLDOUT,
    assign,
    bucket,
    sample_ratio_mismatch,
    uplift,
)

VARIANTS = [("control", 1.0), ("treatment", 1.0)]


def test_assignment_is_stable_for_the_same_customer_and_experiment():
    cid = "6f1c1c9e-0000-4000-8000-000000000001"

    first = assign("exp-1", cid, VARIANTS, holdout=0.1)

    assert all(assign("exp-1", cid, VARIANTS, holdout=0.1) == first for _ in range(5))
    assert bucket("exp-1", cid) == bucket("exp-1", cid)
    assert bucket("exp-1", cid) != bucket("exp-2", cid)


def test_assignment_of_100000_ids_is_balanced_by_chi_squared():
    ids = [str(uuid.UUID(int=i)) for i in range(100_000)]
    counts = {"control": 0, "treatment": 0, HOLDOUT: 0}

    for cid in ids:
        counts[assign("homepage-banner", cid, VARIANTS, holdout=0.1)] += 1

    expected = [45_000, 45_000, 10_000]
    _, p = stats.chisquare([counts["control"], counts["treatment"], counts[HOLDOUT]], expected)
    assert p > 0.001, counts
    srm = sample_ratio_mismatch(counts, {"control": 0.45, "treatment": 0.45, HOLDOUT: 0.1})
    assert not srm.mismatch


def test_unequal_weights_are_respected():
    counts = {"a": 0, "b": 0}
    for i in range(20_000):
        counts[assign("weighted", str(i), [("a", 3.0), ("b", 1.0)])] += 1

    assert counts["a"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_experiments_split_independently():
    ids = [str(i) for i in range(20_000)]
    a = [assign("exp-a", cid, VARIANTS) for cid in ids]
    b = [assign("exp-b", cid, VARIANTS) for cid in ids]

    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(ids)
    assert same == pytest.approx(0.5, abs=0.02)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        assign("x", "1", [])
    with pytest.raises(ValueError):
        assign("x", "1", VARIANTS, holdout=1.0)
    with pytest.raises(ValueError):
        assign("x", "1", [("a", 0.0)])


def test_sample_ratio_mismatch_flags_a_broken_split():
    srm = sample_ratio_mismatch(
        {"control": 5_400, "treatment": 4_600}, {"control": 1, "treatment": 1}
    )

    assert srm.mismatch
    assert srm.chi2 == pytest.approx(2 * 400**2 / 5_000)
    assert srm.expected == {"control": 5_000, "treatment": 5_000}


def test_uplift_matches_a_hand_computation():
    # control 100/1000 = 0.10, treatment 130/1000 = 0.13
    result = uplift(
        control_conversions=100,
        control_exposed=1000,
        treatment_conversions=130,
        treatment_exposed=1000,
    )

    # se = sqrt(0.13*0.87/1000 + 0.10*0.90/1000) = sqrt(0.0001131 + 0.00009) = 0.0142513
    assert result.absolute == pytest.approx(0.03)
    assert result.relative == pytest.approx(0.30)
    assert result.ci_low == pytest.approx(0.03 - 1.959964 * 0.0142513, abs=1e-6)
    assert result.ci_high == pytest.approx(0.03 + 1.959964 * 0.0142513, abs=1e-6)
    # pooled p = 0.115, se = sqrt(0.115*0.885*0.002) = 0.0142671; z = 2.10274; p = 0.03549
    assert result.p_value == pytest.approx(0.03549, abs=1e-4)
    assert result.as_dict()["confidence"] == 0.95


def test_uplift_needs_exposures():
    with pytest.raises(ValueError):
        uplift(
            control_conversions=0, control_exposed=0, treatment_conversions=1, treatment_exposed=2
        )
