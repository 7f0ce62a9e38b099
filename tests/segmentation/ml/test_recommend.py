import numpy as np
import pytest

from segmentation.ml.recommend import (
    Strategy,
    average_precision_at_k,
    build_interactions,
    evaluate,
    fit_recommender,
    item_similarity,
    ndcg_at_k,
    precision_at_k,
)
from segmentation.ml.storage import StoredModel, model_dumps, model_loads


def taste_data(seed: int = 0, users: int = 300):
    """Two taste groups: group A buys items a0..a9, group B buys b0..b9; each user buys 4 of
    their group's items before the cutoff and 2 others after it."""
    rng = np.random.default_rng(seed)
    train_u, train_i, holdout = [], [], {}
    for u in range(users):
        group = "a" if u % 2 == 0 else "b"
        items = [f"{group}{j}" for j in rng.permutation(10)]
        for it in items[:4]:
            train_u.append(u)
            train_i.append(it)
        holdout[u] = set(items[4:6])
    # A few very popular items that everybody buys (the popularity baseline's favourites).
    for u in range(users):
        for it in ("p0", "p1", "p2"):
            train_u.append(u)
            train_i.append(it)
    return build_interactions(train_u, train_i), holdout


def test_ranking_metrics_match_hand_computations():
    recs = ["x", "a", "y", "b"]
    relevant = {"a", "b", "c"}

    assert precision_at_k(recs, relevant, 4) == 0.5
    assert average_precision_at_k(recs, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(recs, relevant, 4) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "c"], relevant, 3) == pytest.approx(1.0)
    assert ndcg_at_k(recs, set(), 4) == 0.0


def test_build_interactions_sums_duplicate_pairs():
    inter = build_interactions(["u1", "u1", "u2"], ["i1", "i1", "i2"], [1.0, 2.0, 1.0])

    assert inter.matrix.shape == (2, 2)
    assert inter.matrix[inter.user_index["u1"], inter.item_index["i1"]] == 3.0


def test_item_similarity_keeps_top_neighbours_without_self():
    inter, _ = taste_data()
    S = item_similarity(inter.matrix, neighbours=5)

    assert S.diagonal().sum() == 0
    assert max(np.diff(S.indptr)) <= 5


@pytest.mark.parametrize("strategy", [Strategy.ITEM_KNN, Strategy.ALS])
def test_personal_strategies_beat_popularity_on_ndcg(strategy):
    inter, holdout = taste_data()
    pop = fit_recommender(inter, strategy=Strategy.POPULARITY)
    model = fit_recommender(inter, strategy=strategy, params={"iterations": 8, "factors": 8})

    def run(rec):
        return evaluate(
            lambda u, k: [i for i, _, _ in rec.recommend(u, k=k, exclude_seen=True)],
            holdout,
            k=5,
        )

    personal, popular = run(model), run(pop)
    assert personal["ndcg"] > popular["ndcg"] + 0.2
    assert personal["users"] == 300


def test_exclude_seen_never_recommends_what_the_user_has():
    inter, _ = taste_data()
    rec = fit_recommender(inter, strategy=Strategy.ITEM_KNN)

    items = [i for i, _, _ in rec.recommend(0, k=10, exclude_seen=True)]
    seen = {inter.item_ids[j] for j in inter.matrix[inter.user_index[0]].indices}
    assert len(items) == 10 and not seen & set(items)


def test_unknown_customer_gets_the_popularity_fallback():
    inter, _ = taste_data()
    rec = fit_recommender(inter, strategy=Strategy.ALS, params={"iterations": 2, "factors": 4})

    recs = rec.recommend("never-seen", k=3)

    assert [(i, s) for i, _, s in recs] == [
        ("p0", "popularity"),
        ("p1", "popularity"),
        ("p2", "popularity"),
    ]


def test_similar_items_stay_in_the_same_taste_group():
    inter, _ = taste_data()
    rec = fit_recommender(inter, strategy=Strategy.ITEM_KNN)

    similar = [i for i, _ in rec.similar_items("a0", k=5) if not i.startswith("p")]

    assert similar and all(i.startswith("a") for i in similar)
    assert rec.similar_items("nope") == []


def test_recommender_round_trips_through_signed_storage():
    inter, _ = taste_data(users=40)
    rec = fit_recommender(inter, strategy=Strategy.ITEM_KNN)
    key = b"r" * 32

    loaded = model_loads(
        model_dumps(StoredModel(pipeline=rec, clusterer=None, feature_names=()), key=key), key=key
    ).pipeline

    assert loaded.recommend(3, k=5) == rec.recommend(3, k=5)
