"""Segmentation against raw baselines on 1,000,000 customers and 10,000,000 events.

Data, in a throwaway database (BenchDatabase), generated once per run:
- customers and their consent states by COPY from Python (90% granted profiling; the other 10%
  are GDPR customers with no decision, so consent really filters);
- events inside PostgreSQL (INSERT ... SELECT over generate_series, indexes built afterwards):
  10,000,000 shipped through Python would time the generator, not the project. Orders of 1 to 3
  lines ("Order Completed", 3% "Order Refunded"), "Product Viewed", "Product Added", "Checkout
  Started", over two years, 20 categories, 2% non-product lines; heavy-tailed customers.

Comparisons (best of BENCH_REPEATS, default 3, alternating project and raw):
1. features: `segmentation.services.features_compute` (consent selection, the upsert into
   CustomerFeatures, stale-row removal, RFM quintiles, run bookkeeping) against the same
   aggregation query and the same RFM window scoring written by hand into plain tables over
   the same customers (consent resolved beforehand, untimed). Every timed project run is what
   the daily schedule does: a re-run a day later over the previous day's rows, so every row
   is rewritten with changed values (recency, tenure, windows). An untimed first run fills the
   table; timed run i of each side is as of AS_OF - (BENCH_REPEATS - 1 - i) days, so the last
   one, which the clustering and segment lines read, is as of AS_OF.
2. clustering: `clustering_run_execute` (mini-batch k-means, k=8, the 8 default features:
   stream the matrix from PostgreSQL, preprocessing pipeline, metrics on samples, personas,
   projection, signed model, stability against the previous run, COPY of the assignments;
   the matrix is read by COPY and NumPy's parser) against psycopg fetching the same columns
   row by row (`fetchall`), the raw scikit-learn pipeline and MiniBatchKMeans,
   and a COPY of the labels into a plain table (no indexes). One BLAS/OpenMP thread each
   (see bench/clustering.py for why).
3. If bench/_segments_bench.py exists (owned by the segments package), its `refresh_vs_raw`
   and `realtime_latency` run next on the same database.

Targets: features within 1.5x of raw (ratio >= 0.67), clustering within 1.3x (>= 0.77).
BENCH_SCALE shrinks customers and events alike; BENCH_KEEP=1 keeps the database afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
import uuid

from _common import ROOT, BenchDatabase, best_rates, report, scaled

sys.path.insert(0, str(ROOT))

CUSTOMERS = scaled(1_000_000)
EVENTS = scaled(10_000_000)
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
GRANTED_SHARE = 0.9
K = 8
SEED = 0
# Today at midnight: the rule segment refresh (and the real-time check) evaluate their windows at
# the current time, so the generated history must end now for the benchmark rule to match anyone.
AS_OF = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)

DB = BenchDatabase("cdp_bench_segmentation")


def execute(sql: str, params: object = None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def generate() -> None:
    """Customers and consent by COPY, events by INSERT ... SELECT; then indexes and ANALYZE."""
    import numpy as np
    from django.db import connection

    from consent.models import Purpose

    rng = np.random.default_rng(SEED)
    now = dt.datetime.now(dt.UTC)
    ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(CUSTOMERS)]
    granted = rng.random(CUSTOMERS) < GRANTED_SHARE
    version = Purpose.objects.get(code="profiling").version
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(
            "COPY profiles_customer (id, status, jurisdiction, country, attributes, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for customer_id in ids:
                copy.write_row((customer_id, "active", "gdpr", "DE", "{}", now, now))
        with raw.copy(
            "COPY consent_consentstate (customer_id, purpose_code, granted, since, channel, "
            "method, purpose_version, event_seq) FROM STDIN"
        ) as copy:
            for n, customer_id in enumerate(ids):
                if granted[n]:
                    copy.write_row(
                        (customer_id, "profiling", True, now, "import", "bench", version, n + 1)
                    )
    source_id = uuid.uuid4()
    execute(
        "INSERT INTO ingest_source (id, name, kind, enabled, key_hash, key_prefix, "
        "max_request_bytes, max_message_bytes, max_batch_messages, max_depth, "
        "max_event_age_days, created_at, updated_at) "
        "VALUES (%s, 'bench', 'server', true, %s, 'bench', 1, 1, 1, 1, 1, now(), now())",
        [source_id, os.urandom(32)],
    )
    execute(
        "CREATE UNLOGGED TABLE bench_customer AS SELECT row_number() OVER () - 1 AS n, id "
        "FROM profiles_customer"
    )
    execute("CREATE UNIQUE INDEX ON bench_customer (n)")
    execute("ALTER TABLE ingest_event DROP CONSTRAINT event_unique_message")
    execute("ALTER TABLE ingest_event DROP CONSTRAINT ingest_event_pkey")
    execute("DROP INDEX ingest_even_custome_425100_idx")
    execute("DROP INDEX ingest_even_type_571f1b_idx")
    # Groups are orders (1-3 lines) or single behaviour events; a customer is drawn per group
    # with a skew (power of a uniform), so a few customers have many events.
    # Orders (32% of groups) have 1 + round(2.2 u) lines, 2.09 on average: 1.349 events a group.
    groups = round(EVENTS / (0.68 + 0.32 * (1 + (1 * 1.0 + 2 * 0.7) / 2.2)))
    execute(
        """
        INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name,
            "timestamp", received_at, clamped, amount, currency, product_id, properties, payload)
        SELECT gen_random_uuid(), %(source)s, 'm' || g.g || '-' || l.l, c.id, 'track', g.name,
            g.ts, g.ts, false,
            CASE g.name WHEN 'Order Completed' THEN round((1 + random() * 80)::numeric, 2)
                WHEN 'Order Refunded' THEN -round((1 + random() * 80)::numeric, 2) END,
            'EUR', 'p' || (random() * 5000)::int,
            jsonb_build_object('order_id', 'o' || g.g, 'category', 'cat' || (g.g %% 20),
                'quantity', 1, 'non_product', random() < 0.02),
            '\\x00'::bytea
        FROM (
            SELECT g, (power(random(), 1.6) * %(customers)s)::bigint %% %(customers)s AS cn,
                %(as_of)s - random() * interval '730 days' AS ts,
                CASE WHEN r < 0.30 THEN 'Order Completed' WHEN r < 0.32 THEN 'Order Refunded'
                     WHEN r < 0.72 THEN 'Product Viewed' WHEN r < 0.92 THEN 'Product Added'
                     ELSE 'Checkout Started' END AS name,
                CASE WHEN r < 0.32 THEN 1 + (random() * 2.2)::int ELSE 1 END AS lines
            FROM (SELECT g, random() AS r FROM generate_series(1, %(groups)s) g) s
        ) g
        JOIN bench_customer c ON c.n = g.cn
        CROSS JOIN LATERAL generate_series(1, g.lines) l
        """,
        {"source": source_id, "customers": CUSTOMERS, "groups": groups, "as_of": AS_OF},
    )
    execute("ALTER TABLE ingest_event ADD CONSTRAINT ingest_event_pkey PRIMARY KEY (id)")
    execute(
        "ALTER TABLE ingest_event ADD CONSTRAINT event_unique_message "
        "UNIQUE (source_id, message_id)"
    )
    execute(
        'CREATE INDEX ingest_even_custome_425100_idx ON ingest_event (customer_id, "timestamp")'
    )
    execute('CREATE INDEX ingest_even_type_571f1b_idx ON ingest_event (type, name, "timestamp")')
    execute("VACUUM ANALYZE ingest_event")
    execute("VACUUM ANALYZE profiles_customer")
    execute("VACUUM ANALYZE consent_consentstate")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_event")
        events = cursor.fetchone()[0]
    print(
        f"# generated {CUSTOMERS:,} customers ({GRANTED_SHARE:.0%} allowed for profiling) and "
        f"{events:,} events in {time.perf_counter() - started:.0f} s",
        flush=True,
    )


def bench_features() -> None:
    from django.db import connection

    from segmentation import features as feature_sql
    from segmentation.services import features_compute

    allowed_sql, params = feature_sql.allowed_customers_sql()
    execute(f"CREATE UNLOGGED TABLE bench_allowed AS {allowed_sql}", params)
    execute("ALTER TABLE bench_allowed ADD PRIMARY KEY (id)")
    execute("ANALYZE bench_allowed")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_allowed")
        allowed = cursor.fetchone()[0]
    select = feature_sql.feature_select_sql("bench_allowed")

    def score(rank: str) -> str:
        return f"CASE WHEN n = 1 THEN 1 ELSE greatest(1, (5 * {rank} + n - 2) / (n - 1)) END"

    days = [AS_OF - dt.timedelta(days=REPEATS - 1 - n) for n in range(REPEATS)]
    project_days, raw_days = iter(days), iter(days)

    def project() -> int:
        run = features_compute(actor="bench", as_of=next(project_days))
        assert run.customers == allowed, (run.customers, allowed)
        return run.customers

    def raw() -> int:
        execute("DROP TABLE IF EXISTS bench_raw_features, bench_raw_rfm")
        execute(f"CREATE TABLE bench_raw_features AS {select}", {"as_of": next(raw_days)})
        execute(
            f"""
            CREATE TABLE bench_raw_rfm AS
            SELECT customer_id, 6 - {score("rr")} AS r, {score("fr")} AS f, {score("mr")} AS m
            FROM (
                SELECT customer_id,
                    row_number() OVER (ORDER BY recency_days, customer_id) - 1 AS rr,
                    row_number() OVER (ORDER BY frequency, customer_id) - 1 AS fr,
                    row_number() OVER (ORDER BY monetary, customer_id) - 1 AS mr,
                    count(*) OVER () AS n
                FROM bench_raw_features WHERE frequency > 0
            ) ranked
            """
        )
        return allowed

    # The day before the first timed run (untimed): the table a scheduled run finds.
    features_compute(actor="bench", as_of=days[0] - dt.timedelta(days=1))
    project_rate, raw_rate = best_rates(project, raw, repeats=REPEATS)
    print(
        f"# features: {allowed:,} allowed customers, re-runs a day apart, best of {REPEATS}",
        flush=True,
    )
    report("segmentation features", "customers", project_rate, raw_rate)


def bench_clustering() -> None:
    import numpy as np
    from django.db import connection
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, RobustScaler
    from threadpoolctl import threadpool_limits

    from segmentation.models import ClusteringRun
    from segmentation.selectors import DEFAULT_CLUSTER_FEATURES
    from segmentation.services import clustering_run_create, clustering_run_execute

    names = list(DEFAULT_CLUSTER_FEATURES)
    columns = ", ".join(f"{n}::float8" for n in names)
    execute("CREATE TABLE IF NOT EXISTS bench_raw_labels (customer_id uuid, cluster int)")
    log_columns: list[int] = []

    def project() -> int:
        run = clustering_run_create(
            actor="bench",
            algorithm="minibatch_kmeans",
            params={"k": K},
            random_state=SEED,
            trigger="bench",
            enqueue=False,
        )
        done = clustering_run_execute(run_id=run.pk)
        assert done is not None and done.k == K
        log_columns[:] = [names.index(n) for n in done.preprocessing["log_features"]]
        return done.population

    def raw_log(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        X[:, log_columns] = np.log1p(np.maximum(X[:, log_columns], 0))
        return X

    def raw() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT customer_id, {columns} FROM segmentation_customerfeatures "
                "ORDER BY customer_id"
            )
            rows = cursor.fetchall()
        ids = [row[0] for row in rows]
        X = np.array([row[1:] for row in rows], dtype=np.float64)
        pipeline = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("log", FunctionTransformer(raw_log)),
                ("scale", RobustScaler()),
                ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -5.0, "a_max": 5.0})),
            ]
        )
        Xt = pipeline.fit_transform(X)
        labels = MiniBatchKMeans(
            n_clusters=K, batch_size=4096, n_init=3, max_iter=100, random_state=SEED
        ).fit_predict(Xt)
        execute("TRUNCATE bench_raw_labels")
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy("COPY bench_raw_labels (customer_id, cluster) FROM STDIN") as copy,
        ):
            for customer_id, label in zip(ids, labels.tolist(), strict=True):
                copy.write_row((customer_id, label))
        return len(ids)

    with threadpool_limits(limits=1):
        project()  # a first run, so every timed run also measures stability against a previous
        project_rate, raw_rate = best_rates(project, raw, repeats=REPEATS)
    last = ClusteringRun.objects.filter(status="succeeded").order_by("-created_at").first()
    assert last is not None
    print(
        f"# clustering: {last.population:,} customers x {len(names)} features, k={K}, "
        f"silhouette {last.metrics['silhouette']:.3f}, stability ARI {last.stability_ari:.3f}, "
        f"one thread each, best of {REPEATS}",
        flush=True,
    )
    report("segmentation clustering", "customers", project_rate, raw_rate)


def main() -> None:
    DB.create()
    try:
        generate()
        bench_features()
        bench_clustering()
        try:
            import _segments_bench  # owned by the segments package
        except ImportError:
            print("# bench/_segments_bench.py not present: no refresh or real-time lines")
        else:
            _segments_bench.refresh_vs_raw(customers=CUSTOMERS, events=EVENTS)
            _segments_bench.realtime_latency(customers=CUSTOMERS)
    finally:
        from django.db import connections

        connections.close_all()
        if os.environ.get("BENCH_KEEP") != "1":
            DB.drop()


if __name__ == "__main__":
    main()
