import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation.ml.personas import (
    RFM_SEGMENTS,
    RfmRoles,
    personas,
    quintile_scores,
    rfm_scores,
    rfm_segment,
)

NAMES = ["recency", "frequency", "monetary", "tenure"]


def _rows(recency, frequency, monetary, tenure, times):
    return [[recency, frequency, monetary, tenure]] * times


def test_personas_profile_and_label_each_cluster():
    X = np.array(
        _rows(5, 20, 1000, 400, 2)  # cluster 0: recent, frequent, big spenders
        + _rows(300, 10, 2000, 500, 2)  # cluster 1: gone quiet after spending a lot
        + _rows(3, 1, 50, 10, 2)  # cluster 2: just arrived
        + _rows(100, 2, 60, 200, 2),  # cluster 3: quiet, rare, small
        dtype=float,
    )
    labels = np.repeat([0, 1, 2, 3], 2)

    result = personas(X, labels, NAMES)

    # Population medians: recency 52.5, frequency 6, monetary 530, tenure 300.
    assert [(p.cluster, p.label, p.size, p.share) for p in result] == [
        (0, "High-value loyal", 2, 0.25),
        (1, "Lapsed big spenders", 2, 0.25),
        (2, "New customers", 2, 0.25),
        (3, "Lapsed occasional", 2, 0.25),
    ]
    top = result[0]
    assert top.medians == {"recency": 5.0, "frequency": 20.0, "monetary": 1000.0, "tenure": 400.0}
    assert top.difference == {
        "recency": -47.5,
        "frequency": 14.0,
        "monetary": 470.0,
        "tenure": 100.0,
    }
    assert top.relative == {
        "recency": -47.5 / 52.5,
        "frequency": 14 / 6,
        "monetary": 470 / 530,
        "tenure": 100 / 300,
    }


def test_persona_labels_are_unique_and_ordered_by_size():
    # frequency and monetary only; population median of both is 5.
    X = np.array(
        _rows(0, 1, 1, 0, 2) + _rows(0, 1, 1, 0, 3) + _rows(0, 10, 10, 0, 2) + _rows(0, 5, 5, 0, 4),
        dtype=float,
    )
    labels = np.repeat([0, 1, 2, 3], [2, 3, 2, 4])

    result = personas(X, labels, NAMES, roles=RfmRoles(recency=None, tenure=None))

    assert [(p.cluster, p.label) for p in result] == [
        (3, "Steady regulars"),
        (1, "Low-value occasional"),
        (0, "Low-value occasional 2"),
        (2, "High-value loyal"),
    ]


def test_noise_gets_no_persona_but_counts_in_shares_and_missing_values_are_ignored():
    X = np.array([[1.0], [np.nan], [3.0], [100.0]])
    labels = np.array([0, 0, 0, -1])

    (only,) = personas(X, labels, ["monetary"])

    assert only.size == 3 and only.share == 0.75
    assert only.medians == {"monetary": 2.0}
    assert only.difference == {"monetary": -1.0}  # population median of 1, 3, 100 is 3
    assert only.relative == {"monetary": -1 / 3}


def test_relative_difference_is_none_when_the_population_median_is_zero():
    X = np.array([[0.0], [0.0], [0.0], [4.0], [6.0]])
    labels = np.array([0, 0, 0, 1, 1])

    result = personas(X, labels, ["cancellations"])

    assert [(p.cluster, p.difference, p.relative) for p in result] == [
        (0, {"cancellations": 0.0}, {"cancellations": None}),
        (1, {"cancellations": 5.0}, {"cancellations": None}),
    ]


def test_rfm_scores_and_segments_match_a_hand_computed_example():
    # Ten customers: quintile bins of ranks 0..9 are 1,1,2,2,3,3,4,4,5,5.
    recency = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    frequency = np.array([9, 1, 2, 3, 5, 4, 10, 7, 6, 8])
    monetary = frequency * 10.0

    scores = rfm_scores(recency, frequency, monetary)

    assert scores.r.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert scores.f.tolist() == [5, 1, 1, 2, 3, 2, 5, 4, 3, 4]
    assert scores.m.tolist() == scores.f.tolist()
    assert scores.segment.tolist() == [
        "Champions",
        "New customers",
        "Promising",
        "Potential loyalist",
        "Need attention",
        "About to sleep",
        "Can't lose them",
        "At risk",
        "At risk",
        "At risk",
    ]


def test_ties_are_broken_by_input_order():
    assert quintile_scores(np.full(10, 3.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_rf_grid_is_the_documented_mapping():
    grid = {(r, f): rfm_segment(r, f) for r in range(1, 6) for f in range(1, 6)}
    expected = {
        "Champions": {(5, 4), (5, 5)},
        "Loyal": {(3, 4), (3, 5), (4, 4), (4, 5)},
        "Potential loyalist": {(4, 2), (4, 3), (5, 2), (5, 3)},
        "New customers": {(5, 1)},
        "Promising": {(4, 1)},
        "Need attention": {(3, 3)},
        "About to sleep": {(3, 1), (3, 2)},
        "At risk": {(1, 3), (1, 4), (2, 3), (2, 4)},
        "Can't lose them": {(1, 5), (2, 5)},
        "Hibernating": {(1, 2), (2, 1), (2, 2)},
        "Lost": {(1, 1)},
    }
    assert set(expected) == set(RFM_SEGMENTS)
    assert {name: {rf for rf, n in grid.items() if n == name} for name in expected} == expected
    with pytest.raises(ValueError):
        rfm_segment(0, 3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=5, max_size=200))
def test_quintiles_match_pandas_qcut_of_first_ranks(values):
    series = pd.Series(values, dtype=float)
    expected = pd.qcut(series.rank(method="first"), 5, labels=False) + 1

    assert quintile_scores(np.array(values, dtype=float)).tolist() == expected.tolist()
