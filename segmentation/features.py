"""Per-customer features as set-based SQL over `ingest_event` (nothing loads events in Python).

Definitions (the contract of the tracking API and CSV imports; `FEATURE_COLUMNS` has one line
per column):

- An order is a distinct `properties->>'order_id'` among a customer's "Order Completed" events
  (the event id when it has none); an order's lines share its timestamp. "Order Refunded" lines
  (cancellations, returns; negative amounts) count separately as refunds and never reduce
  monetary value, so recency and frequency stay about buying.
- Monetary value sums every "Order Completed" line's amount, non-product lines (postage, fees,
  `properties.non_product = true`) included: the customer paid them. Product features (distinct
  products, categories, favourite category) use product lines only.
- Recency and tenure are whole days (floor) from the last / first order to `as_of`; events after
  `as_of` are ignored, so a run over historical data (Online Retail ends in 2011) reads as it
  would have on that day.
- Windows of N days are `as_of - N days < timestamp <= as_of`. A cart abandonment is a UTC day
  with a "Product Added" in the window and no "Order Completed" on that day.

`features_compute_chunk` fills one range of customer ids: the consented customers of the range
go to a work table, one CREATE TABLE AS aggregates their events (with RFM scores when the range
is everyone), and one MERGE writes the rows. RFM uses the same quintile rule as
`segmentation.ml.personas.quintile_scores` (ties broken by customer id); `rfm_scores_update`
scores everyone in one UPDATE after a chunked run.

Every run rewrites every row, so the table is laid out for that (migration 0004): no index but
the primary key, and half of each page free, so updates are heap-only (HOT) and touch no index.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple

from django.db import connection

from cdp.audit.chain import advisory_lock
from cdp.profiles.models import Customer
from consent.selectors import customers_allowed_for
from segmentation.ml.names import rfm_segment
from segmentation.models import FEATURE_VERSION

PROFILING = "profiling"
WINDOWS = (7, 30, 90)
ORDER = "Order Completed"
REFUND = "Order Refunded"
VIEW = "Product Viewed"
CART_ADD = "Product Added"
# Held by each chunk's transaction: one writer of CustomerFeatures rows at a time.
FEATURE_WRITE_LOCK = "segmentation.features"

_WINDOW_COLUMNS = ", ".join(
    f"{kind}_{n}d" for kind in ("views", "cart_adds", "cart_abandonments") for n in WINDOWS
)

_WINDOW_EVENT_COLUMNS = [f"{kind}_{n}d" for kind in ("views", "cart_adds") for n in WINDOWS]
_ABANDON_COLUMNS = [f"cart_abandonments_{n}d" for n in WINDOWS]

FEATURE_SQL_COLUMNS = (
    "customer_id, recency_days, frequency, monetary, avg_order_value, tenure_days, "
    "days_between_orders, first_order_at, last_order_at, refunds, refunded_value, "
    f"{_WINDOW_COLUMNS}, distinct_products, distinct_categories, favourite_category"
)


def feature_select_sql(allowed_table: str) -> str:
    """The SELECT computing every feature for the customers listed in `allowed_table(id)`.

    Takes named parameters `as_of`; shared with the benchmark's raw baseline, which runs the
    same aggregation without the consent table, the upsert or the bookkeeping.
    """
    product_line = "NOT (e.properties @> '{\"non_product\": true}')"
    order_key = "coalesce(e.properties->>'order_id', e.id::text)"
    in_window = "e.timestamp > %(as_of)s - interval '{n} days'"
    window_counts = ",\n".join(
        f"count(*) FILTER (WHERE e.name = '{name}' AND {in_window.format(n=n)}) AS {kind}_{n}d"
        for kind, name in (("views", VIEW), ("cart_adds", CART_ADD))
        for n in WINDOWS
    )
    day_flags = ",\n".join(
        f"bool_or(e.name = '{CART_ADD}' AND {in_window.format(n=n)}) AS added_{n}" for n in WINDOWS
    )
    abandon_counts = ",\n".join(
        f"count(*) FILTER (WHERE added_{n} AND NOT ordered) AS cart_abandonments_{n}d"
        for n in WINDOWS
    )
    return f"""
WITH ev AS (
    SELECT e.customer_id,
        count(DISTINCT {order_key}) FILTER (WHERE e.name = '{ORDER}') AS frequency,
        coalesce(sum(e.amount) FILTER (WHERE e.name = '{ORDER}'), 0) AS monetary,
        min(e.timestamp) FILTER (WHERE e.name = '{ORDER}') AS first_order_at,
        max(e.timestamp) FILTER (WHERE e.name = '{ORDER}') AS last_order_at,
        count(DISTINCT {order_key}) FILTER (WHERE e.name = '{REFUND}') AS refunds,
        coalesce(sum(abs(e.amount)) FILTER (WHERE e.name = '{REFUND}'), 0) AS refunded_value,
        {window_counts},
        count(DISTINCT nullif(e.product_id, ''))
            FILTER (WHERE e.name = '{ORDER}' AND {product_line}) AS distinct_products,
        count(DISTINCT nullif(e.properties->>'category', ''))
            FILTER (WHERE e.name = '{ORDER}' AND {product_line}) AS distinct_categories
    FROM ingest_event e
    JOIN {allowed_table} a ON a.id = e.customer_id
    WHERE e.type = 'track'
        AND e.name IN ('{ORDER}', '{REFUND}', '{VIEW}', '{CART_ADD}')
        AND e.timestamp <= %(as_of)s
    GROUP BY e.customer_id
),
days AS (
    SELECT e.customer_id,
        {day_flags},
        bool_or(e.name = '{ORDER}') AS ordered
    FROM ingest_event e
    JOIN {allowed_table} a ON a.id = e.customer_id
    WHERE e.type = 'track'
        AND e.name IN ('{ORDER}', '{CART_ADD}')
        AND e.timestamp > %(as_of)s - interval '{max(WINDOWS)} days'
        AND e.timestamp <= %(as_of)s
    GROUP BY e.customer_id, date_trunc('day', e.timestamp AT TIME ZONE 'UTC')
),
abandoned AS (
    SELECT customer_id,
        {abandon_counts}
    FROM days
    GROUP BY customer_id
),
favourite AS (
    SELECT DISTINCT ON (customer_id) customer_id, category
    FROM (
        SELECT e.customer_id, e.properties->>'category' AS category, count(*) AS lines
        FROM ingest_event e
        JOIN {allowed_table} a ON a.id = e.customer_id
        WHERE e.type = 'track' AND e.name = '{ORDER}' AND {product_line}
            AND e.timestamp <= %(as_of)s
            AND coalesce(e.properties->>'category', '') <> ''
        GROUP BY 1, 2
    ) c
    ORDER BY customer_id, lines DESC, category
)
SELECT a.id AS customer_id,
    floor(extract(epoch FROM %(as_of)s - ev.last_order_at) / 86400)::int AS recency_days,
    coalesce(ev.frequency, 0) AS frequency,
    coalesce(ev.monetary, 0) AS monetary,
    ev.monetary / nullif(ev.frequency, 0) AS avg_order_value,
    floor(extract(epoch FROM %(as_of)s - ev.first_order_at) / 86400)::int AS tenure_days,
    CASE WHEN ev.frequency > 1 THEN
        extract(epoch FROM ev.last_order_at - ev.first_order_at) / 86400 / (ev.frequency - 1)
    END AS days_between_orders,
    ev.first_order_at,
    ev.last_order_at,
    coalesce(ev.refunds, 0) AS refunds,
    coalesce(ev.refunded_value, 0) AS refunded_value,
    {", ".join(f"coalesce(ev.{c}, 0) AS {c}" for c in _WINDOW_EVENT_COLUMNS)},
    {", ".join(f"coalesce(ab.{c}, 0) AS {c}" for c in _ABANDON_COLUMNS)},
    coalesce(ev.distinct_products, 0) AS distinct_products,
    coalesce(ev.distinct_categories, 0) AS distinct_categories,
    coalesce(fav.category, '') AS favourite_category
FROM {allowed_table} a
LEFT JOIN ev ON ev.customer_id = a.id
LEFT JOIN abandoned ab ON ab.customer_id = a.id
LEFT JOIN favourite fav ON fav.customer_id = a.id
"""  # noqa: S608 (names and constants only; values are parameters)


def _rfm_score(rank: str) -> str:
    """The quintile of a 0-based rank among n, as `quintile_scores` computes it."""
    return f"CASE WHEN n = 1 THEN 1 ELSE greatest(1, (5 * {rank} + n - 2) / (n - 1)) END"


def _rfm_grid() -> dict[str, list[object]]:
    cells = [(r, f, rfm_segment(r, f)) for r in range(1, 6) for f in range(1, 6)]
    return {
        "grid_r": [c[0] for c in cells],
        "grid_f": [c[1] for c in cells],
        "grid_name": [c[2] for c in cells],
    }


def _stage_sql(allowed_table: str, *, score_rfm: bool) -> str:
    """The features of the customers in `allowed_table`, with RFM scores and segment names when
    `score_rfm` (the whole population in one statement: window functions over the customers
    with an order); otherwise those stay empty for `rfm_scores_update` after the last chunk."""
    columns = [c.strip() for c in FEATURE_SQL_COLUMNS.split(",")]
    selected = ", ".join(f"s.{c}" for c in columns)
    features = feature_select_sql(allowed_table)
    if not score_rfm:
        return f"""
SELECT {selected}, NULL::int AS rfm_r, NULL::int AS rfm_f, NULL::int AS rfm_m,
    ''::text AS rfm_segment
FROM ({features}) s"""  # noqa: S608 (constant)
    buyers = "PARTITION BY f.frequency > 0"
    scored = f"""
SELECT {selected},
    CASE WHEN s.frequency > 0 THEN 6 - {_rfm_score("rr")} END AS rfm_r,
    CASE WHEN s.frequency > 0 THEN {_rfm_score("fr")} END AS rfm_f,
    CASE WHEN s.frequency > 0 THEN {_rfm_score("mr")} END AS rfm_m
FROM (
    SELECT f.*,
        row_number() OVER ({buyers} ORDER BY f.recency_days, f.customer_id) - 1 AS rr,
        row_number() OVER ({buyers} ORDER BY f.frequency, f.customer_id) - 1 AS fr,
        row_number() OVER ({buyers} ORDER BY f.monetary, f.customer_id) - 1 AS mr,
        count(*) OVER ({buyers}) AS n
    FROM ({features}) f
) s"""  # noqa: S608 (constant)
    return (
        "SELECT q.*, coalesce(g.name, '') AS rfm_segment FROM ("  # noqa: S608 (constant)
        + scored
        + ") q LEFT JOIN unnest(%(grid_r)s::int[], %(grid_f)s::int[], %(grid_name)s::text[]) "
        "AS g(r, f, name) ON g.r = q.rfm_r AND g.f = q.rfm_f"
    )


def _merge_sql(stage_table: str) -> str:
    """Copy a staged chunk into CustomerFeatures: known customers updated, new ones inserted.

    MERGE joins the stage to the table once (a hash join over a sequential scan of the table
    for a whole population), where INSERT ... ON CONFLICT probes the primary key and locks
    each row (an extra WAL record per row) in the stage's random order: a third faster for a
    million rows. Unlike ON CONFLICT, MERGE raises on a concurrent insert of the same
    customer, so chunks hold FEATURE_WRITE_LOCK; the only other writer, the withdrawal purge,
    deletes (a row deleted under MERGE is inserted again, as ON CONFLICT did, and removed by
    `features_remove_stale`, which re-reads consent afterwards)."""
    columns = [c.strip() for c in FEATURE_SQL_COLUMNS.split(",")]
    stored = [*columns, *_RFM_COLUMNS, "rfm_segment"]
    updates = ", ".join(f"{c} = s.{c}" for c in stored if c != "customer_id")
    return f"""
MERGE INTO segmentation_customerfeatures t
USING {stage_table} s ON t.customer_id = s.customer_id
WHEN MATCHED THEN UPDATE SET {updates},
    feature_run_id = %(run)s, version = %(version)s, as_of = %(as_of)s, computed_at = now()
WHEN NOT MATCHED THEN INSERT (
    {", ".join(stored)}, feature_run_id, version, as_of, computed_at
) VALUES ({", ".join(f"s.{c}" for c in stored)}, %(run)s, %(version)s, %(as_of)s, now())
"""  # noqa: S608 (constant)


_RFM_COLUMNS = ("rfm_r", "rfm_f", "rfm_m")


def allowed_customers_sql(
    *, low: uuid.UUID | None = None, high: uuid.UUID | None = None
) -> tuple[str, list[object]]:
    """The ids of customers allowed for profiling in (low, high], as SQL and parameters."""
    qs = customers_allowed_for(PROFILING)
    if low is not None:
        qs = qs.filter(id__gt=low)
    if high is not None:
        qs = qs.filter(id__lte=high)
    sql, params = qs.values("id").query.sql_with_params()
    return sql, list(params)


def chunk_bounds(chunk_size: int) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """Ranges (low, high] of customer ids with about `chunk_size` allowed customers each.

    When there are no more customers than `chunk_size` at all, one unbounded range, without
    evaluating the consent selection (which the chunk evaluates anyway): that costs a second
    pass over every customer and their consent state per run."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {Customer._meta.db_table} LIMIT %s) c",  # noqa: S608
            [chunk_size + 1],
        )
        if cursor.fetchone()[0] <= chunk_size:
            return [(None, None)]
    sql, params = allowed_customers_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM (SELECT a.id, row_number() OVER (ORDER BY a.id) AS n "  # noqa: S608
            f"FROM ({sql}) a) x WHERE n %% %s = 0 ORDER BY id",
            [*params, chunk_size],
        )
        cuts = [row[0] for row in cursor.fetchall()]
    bounds: list[tuple[uuid.UUID | None, uuid.UUID | None]] = []
    low: uuid.UUID | None = None
    for cut in cuts:
        bounds.append((low, cut))
        low = cut
    bounds.append((low, None))
    return bounds


def features_compute_chunk(
    *,
    run_id: uuid.UUID,
    as_of: dt.datetime,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    score_rfm: bool = False,
) -> int:
    """Compute and write the features of the allowed customers in (low, high]; the caller owns
    the transaction. Returns rows written.

    The aggregation runs as CREATE TABLE AS into an unlogged staging table, because PostgreSQL
    plans INSERT ... SELECT without parallel workers while CREATE TABLE AS can use them (the
    scan of the events is most of the work); then one MERGE copies the staged rows. Both work
    tables (unlogged: temporary tables cannot be scanned in parallel) are named after the run
    and dropped in the same transaction, so a rollback leaves nothing behind."""
    advisory_lock(FEATURE_WRITE_LOCK)
    sql, params = allowed_customers_sql(low=low, high=high)
    suffix = uuid.UUID(str(run_id)).hex
    allowed, stage = f"seg_allowed_{suffix}", f"seg_stage_{suffix}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {allowed}, {stage}")
        cursor.execute(f"CREATE UNLOGGED TABLE {allowed} AS {sql}", params)
        cursor.execute(f"ALTER TABLE {allowed} ADD PRIMARY KEY (id)")
        cursor.execute(f"ANALYZE {allowed}")
        cursor.execute(
            f"CREATE UNLOGGED TABLE {stage} AS {_stage_sql(allowed, score_rfm=score_rfm)}",
            {"as_of": as_of, **_rfm_grid()},
        )
        cursor.execute(
            _merge_sql(stage), {"run": run_id, "version": FEATURE_VERSION, "as_of": as_of}
        )
        written = cursor.rowcount
        cursor.execute(f"DROP TABLE {allowed}, {stage}")
        return written


class StaleRows(NamedTuple):
    """What `features_remove_stale` deleted."""

    removed: int
    # Rows this run wrote whose customer lost consent while it ran: the population the run
    # scored RFM over changed, so the scores must be recomputed.
    written_by_run: int


def features_remove_stale(*, run_id: uuid.UUID) -> StaleRows:
    """Delete rows this run did not write (customers no longer allowed when it started), then
    rows of customers no longer allowed now (a withdrawal that raced the run: the consent
    selection is evaluated again, in the second statement's snapshot).

    Two statements, because each is then a plain scan or an anti-join: under one OR the
    NOT EXISTS stays a subplan, which PostgreSQL runs once per row (an index probe of the
    customers and of their consent, 20 s for a million rows) once the consented ids no longer
    fit in work_mem for a hashed subplan."""
    sql, params = allowed_customers_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM segmentation_customerfeatures WHERE feature_run_id IS DISTINCT FROM %s",
            [run_id],
        )
        not_written = cursor.rowcount
        cursor.execute(
            "DELETE FROM segmentation_customerfeatures f "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM ({sql}) a WHERE a.id = f.customer_id)",
            params,
        )
        written_by_run = cursor.rowcount
    return StaleRows(not_written + written_by_run, written_by_run)


def rfm_scores_update() -> int:
    """Score R, F, M quintiles and the segment name for every customer with an order, in one
    UPDATE; the bins are those of `quintile_scores` (rank r of n in bin ceil(5 (r-1)/(n-1)))."""
    grid = [(r, f, rfm_segment(r, f)) for r in range(1, 6) for f in range(1, 6)]
    values = ", ".join(["(%s, %s, %s)"] * len(grid))
    params = [v for cell in grid for v in cell]

    def score(rank: str) -> str:
        return f"CASE WHEN n = 1 THEN 1 ELSE greatest(1, (5 * {rank} + n - 2) / (n - 1)) END"

    sql = f"""
WITH ranked AS (
    SELECT customer_id,
        row_number() OVER (ORDER BY recency_days, customer_id) - 1 AS rr,
        row_number() OVER (ORDER BY frequency, customer_id) - 1 AS fr,
        row_number() OVER (ORDER BY monetary, customer_id) - 1 AS mr,
        count(*) OVER () AS n
    FROM segmentation_customerfeatures
    WHERE frequency > 0
),
scored AS (
    SELECT customer_id, 6 - {score("rr")} AS r, {score("fr")} AS f, {score("mr")} AS m
    FROM ranked
)
UPDATE segmentation_customerfeatures t
SET rfm_r = s.r, rfm_f = s.f, rfm_m = s.m, rfm_segment = g.name
FROM scored s
JOIN (VALUES {values}) AS g(r, f, name) ON g.r = s.r AND g.f = s.f
WHERE t.customer_id = s.customer_id
"""  # noqa: S608 (constant)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
