"""Recommendations from implicit feedback (purchases, cart adds, views), over NumPy/SciPy.

Three strategies share one serving shape (`Recommender.recommend`):

- ``item_knn``: item-to-item cosine similarity of the user-item matrix, kept to each item's top
  neighbours; a user's score for an item is the sum of its similarities to what they interacted
  with. Also answers "customers who bought this also bought" (`similar_items`).
- ``als``: implicit-feedback matrix factorisation by alternating least squares (Hu, Koren and
  Volinsky 2008: confidence 1 + alpha * r, exact solves per row), written here with NumPy so no
  compiled extension is needed.
- ``popularity``: items by number of distinct buyers; also the fallback for a customer the model
  has never seen (cold start) and to fill a short list.

Offline evaluation (`evaluate`) uses a time-based holdout: fit on interactions before a cutoff,
score each user's top-k against what they bought after it (precision@k, MAP@k, NDCG@k).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from segmentation.ml.names import EVENT_WEIGHTS as EVENT_WEIGHTS  # re-exported
from segmentation.ml.names import Strategy


@dataclass
class Interactions:
    """A users x items matrix of summed weights, with the id <-> index maps."""

    matrix: sp.csr_matrix
    user_ids: list[Any]
    item_ids: list[Any]
    user_index: dict[Any, int] = field(default_factory=dict)
    item_index: dict[Any, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.user_index:
            self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        if not self.item_index:
            self.item_index = {it: i for i, it in enumerate(self.item_ids)}


def build_interactions(
    users: Sequence[Hashable], items: Sequence[Hashable], weights: Sequence[float] | None = None
) -> Interactions:
    """Sum (user, item, weight) triples into a sparse matrix; ids keep first-seen order sorted."""
    user_ids = sorted(set(users), key=str)
    item_ids = sorted(set(items), key=str)
    u_index = {u: i for i, u in enumerate(user_ids)}
    i_index = {it: i for i, it in enumerate(item_ids)}
    rows = np.fromiter((u_index[u] for u in users), dtype=np.int64, count=len(users))
    cols = np.fromiter((i_index[i] for i in items), dtype=np.int64, count=len(items))
    data = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(user_ids), len(item_ids)))
    matrix.sum_duplicates()
    return Interactions(matrix, user_ids, item_ids, u_index, i_index)


def item_similarity(matrix: sp.csr_matrix, *, neighbours: int = 100) -> sp.csr_matrix:
    """Item-item cosine similarity on binarised, log-damped interactions, keeping each item's
    `neighbours` most similar items (diagonal removed). Returns items x items CSR."""
    X = matrix.tocsc(copy=True).astype(np.float64)
    X.data = np.log1p(X.data)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    Xn = X @ sp.diags(1.0 / norms)
    S = (Xn.T @ Xn).tocsr()
    S.setdiag(0)
    S.eliminate_zeros()
    rows, cols, vals = [], [], []
    for i in range(S.shape[0]):
        start, end = S.indptr[i], S.indptr[i + 1]
        if start == end:
            continue
        idx, sim = S.indices[start:end], S.data[start:end]
        if len(sim) > neighbours:
            top = np.argpartition(-sim, neighbours - 1)[:neighbours]
            idx, sim = idx[top], sim[top]
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(sim)
    if not rows:
        return sp.csr_matrix(S.shape)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=S.shape
    )


def als_fit(
    matrix: sp.csr_matrix,
    *,
    factors: int = 32,
    regularization: float = 0.1,
    alpha: float = 15.0,
    iterations: int = 12,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit ALS: minimise sum c_ui (p_ui - x_u.y_i)^2 + reg(|X|^2 + |Y|^2) with p = [r > 0]
    and c = 1 + alpha * log1p(r). Each row's solve uses YtY + Yu^T (C_u - I) Yu, so it costs
    O(nnz_u f^2 + f^3) instead of touching every item. Returns (user_factors, item_factors)."""
    rng = np.random.default_rng(random_state)
    n_users, n_items = matrix.shape
    C = matrix.tocsr().astype(np.float64)
    C.data = alpha * np.log1p(C.data)
    Ct = C.T.tocsr()
    X = rng.normal(scale=0.01, size=(n_users, factors))
    Y = rng.normal(scale=0.01, size=(n_items, factors))
    eye = regularization * np.eye(factors)

    def solve(conf: sp.csr_matrix, fixed: np.ndarray, out: np.ndarray) -> None:
        gram = fixed.T @ fixed + eye
        for row in range(conf.shape[0]):
            start, end = conf.indptr[row], conf.indptr[row + 1]
            if start == end:
                out[row] = 0.0
                continue
            idx, c = conf.indices[start:end], conf.data[start:end]
            Fi = fixed[idx]
            A = gram + (Fi.T * c) @ Fi
            b = (Fi.T * (1.0 + c)).sum(axis=1)
            out[row] = np.linalg.solve(A, b)

    for _ in range(iterations):
        solve(C, Y, X)
        solve(Ct, X, Y)
    return X, Y


def popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """Distinct users per item: the cold-start ranking."""
    return np.asarray((matrix > 0).sum(axis=0)).ravel().astype(np.float64)


def _top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    scores = scores.astype(np.float64, copy=True)
    if exclude is not None and len(exclude):
        scores[exclude] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.sort(np.argpartition(-scores, k - 1)[:k])
    top = top[np.argsort(-scores[top], kind="stable")]  # ties: lower index (id order) first
    return top[np.isfinite(scores[top])]


@dataclass
class Recommender:
    """A fitted recommender ready to serve: everything needed is in memory, nothing is read per
    request. Stored with `segmentation.ml.storage` inside a StoredModel's `pipeline` slot."""

    strategy: Strategy
    interactions: Interactions
    popularity: np.ndarray
    similarity: sp.csr_matrix | None = None
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[Any]:
        return self.interactions.item_ids

    def _user_scores(self, row: int) -> np.ndarray | None:
        if self.strategy == Strategy.ALS and self.user_factors is not None:
            return self.item_factors @ self.user_factors[row]
        if self.strategy == Strategy.ITEM_KNN and self.similarity is not None:
            user_row = self.interactions.matrix.getrow(row)
            user_row.data = np.log1p(user_row.data)
            return np.asarray((user_row @ self.similarity).todense()).ravel()
        return None

    def recommend(
        self, user_id: Hashable, *, k: int = 10, exclude_seen: bool = False
    ) -> list[tuple[Any, float, str]]:
        """Top-k (item id, score, source) for `user_id`; source is the strategy or "popularity"
        for the fallback, which fills the list for unknown users and short personal lists."""
        row = self.interactions.user_index.get(user_id)
        seen = None
        picked: list[tuple[Any, float, str]] = []
        if row is not None:
            if exclude_seen:
                m = self.interactions.matrix
                seen = m.indices[m.indptr[row] : m.indptr[row + 1]]
            scores = self._user_scores(row)
            if scores is not None:
                for i in _top_k(scores, k, seen):
                    if scores[i] > 0:
                        picked.append((self.item_ids[i], float(scores[i]), str(self.strategy)))
        if len(picked) < k:
            taken = {self.interactions.item_index[p[0]] for p in picked}
            excl = np.array(sorted(taken | set(seen.tolist() if seen is not None else [])))
            for i in _top_k(self.popularity, k - len(picked), excl.astype(np.int64)):
                picked.append((self.item_ids[i], float(self.popularity[i]), "popularity"))
        return picked[:k]

    def similar_items(self, item_id: Hashable, *, k: int = 10) -> list[tuple[Any, float]]:
        """Item-to-item: the items most similar to `item_id` (empty for an unknown item)."""
        col = self.interactions.item_index.get(item_id)
        if col is None:
            return []
        if self.similarity is not None:
            row = self.similarity.getrow(col)
            scores = np.zeros(len(self.item_ids))
            scores[row.indices] = row.data
        elif self.item_factors is not None:
            v = self.item_factors
            norms = np.linalg.norm(v, axis=1)
            norms[norms == 0] = 1.0
            scores = (v @ v[col]) / (norms * norms[col])
        else:
            return []
        top = _top_k(scores, k, np.array([col]))
        return [(self.item_ids[i], float(scores[i])) for i in top if scores[i] > 0]


def fit_recommender(
    interactions: Interactions,
    *,
    strategy: Strategy = Strategy.ITEM_KNN,
    params: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> Recommender:
    """Fit `strategy` on the interactions (popularity is always computed, for the fallback)."""
    params = dict(params or {})
    rec = Recommender(
        strategy=strategy,
        interactions=interactions,
        popularity=popularity(interactions.matrix),
        params=params,
    )
    if strategy == Strategy.ITEM_KNN:
        rec.similarity = item_similarity(
            interactions.matrix, neighbours=int(params.get("neighbours", 100))
        )
    elif strategy == Strategy.ALS:
        rec.user_factors, rec.item_factors = als_fit(
            interactions.matrix,
            factors=int(params.get("factors", 32)),
            regularization=float(params.get("regularization", 0.1)),
            alpha=float(params.get("alpha", 15.0)),
            iterations=int(params.get("iterations", 12)),
            random_state=random_state,
        )
    return rec


# -- offline metrics -----------------------------------------------------------------------


def precision_at_k(recommended: Sequence[Any], relevant: set[Any], k: int) -> float:
    """Share of the top-k that the user went on to buy."""
    if k <= 0:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / k


def average_precision_at_k(recommended: Sequence[Any], relevant: set[Any], k: int) -> float:
    """AP@k: mean of precision at each hit's rank, over min(k, |relevant|)."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(k, len(relevant))


def ndcg_at_k(recommended: Sequence[Any], relevant: set[Any], k: int) -> float:
    """Binary-relevance NDCG@k: DCG of the list over the DCG of a perfect list."""
    if not relevant:
        return 0.0
    dcg = sum(
        1.0 / np.log2(rank + 1)
        for rank, item in enumerate(recommended[:k], start=1)
        if item in relevant
    )
    ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return float(dcg / ideal)


def evaluate(
    recommend: Callable[[Any, int], Sequence[Any]],
    holdout: Mapping[Any, set[Any]],
    *,
    k: int = 10,
    users: Iterable[Any] | None = None,
) -> dict[str, float]:
    """Mean precision@k, MAP@k and NDCG@k of `recommend(user, k) -> item ids` over the holdout
    users (those with at least one relevant item)."""
    chosen = [u for u in (users if users is not None else holdout) if holdout.get(u)]
    if not chosen:
        return {"precision": 0.0, "map": 0.0, "ndcg": 0.0, "users": 0, "k": k}
    p = m = n = 0.0
    for user in chosen:
        recs = list(recommend(user, k))
        rel = holdout[user]
        p += precision_at_k(recs, rel, k)
        m += average_precision_at_k(recs, rel, k)
        n += ndcg_at_k(recs, rel, k)
    count = len(chosen)
    return {"precision": p / count, "map": m / count, "ndcg": n / count, "users": count, "k": k}
