"""How a feature run writes: re-runs update rows in place (HOT, no index maintenance), stale rows
go in the run's own transaction, and RFM is rescored only when a withdrawal raced the run.

Synthetic order lines (no data file needed): every test builds its own small population."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction

from segmentation import features as feature_sql
from segmentation.models import CustomerFeatures, FeatureRun, RunStatus
from segmentation.services import (
    _feature_run_finish,
    feature_run_create,
    feature_run_execute,
    features_compute,
)
from tests.segmentation.online_retail import Line, grant_profiling, load_events

pytestmark = pytest.mark.django_db

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
RFM = ("rfm_r", "rfm_f", "rfm_m", "rfm_segment")


def order_lines(customers: int = 40) -> list[Line]:
    """Customer n places 1 + n % 5 orders of 1 + n % 3 lines, spread over the last year."""
    lines = []
    for n in range(customers):
        for order in range(1 + n % 5):
            when = AS_OF - dt.timedelta(days=(n * 37 + order * 53) % 360 + 1)
            for line in range(1 + n % 3):
                lines.append(
                    Line(
                        invoice=f"{n}-{order}",
                        stock_code=f"{10000 + line}",
                        quantity=1 + (n + line) % 4,
                        when=when,
                        price=Decimal("2.50") + n % 7,
                        customer=n,
                    )
                )
    return lines


def population(customers: int = 40) -> list:
    ids = sorted(load_events(order_lines(customers)).values())
    grant_profiling(ids)
    return ids


def scores() -> dict:
    return {
        row["customer_id"]: tuple(row[c] for c in RFM)
        for row in CustomerFeatures.objects.values("customer_id", *RFM)
    }


def fresh_scores(as_of: dt.datetime) -> dict:
    """The RFM a run computes over the current population on an empty table."""
    with transaction.atomic():
        CustomerFeatures.objects.all().delete()
        features_compute(actor="test", as_of=as_of)
        got = scores()
        transaction.set_rollback(True)
    return got


def hot_updates() -> int:
    """Heap-only updates of the features table in this (the test's) transaction so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_hot_updated(%s::regclass), "
            "pg_stat_get_xact_tuples_updated(%s::regclass)",
            [CustomerFeatures._meta.db_table] * 2,
        )
        hot, updated = cursor.fetchone()
    assert hot == updated, "an update of the features table had to touch an index"
    return hot


def test_a_rerun_on_a_later_day_updates_every_row_in_place():
    ids = population()
    features_compute(actor="test", as_of=AS_OF)
    before = {f.customer_id: f.recency_days for f in CustomerFeatures.objects.all()}
    hot_before = hot_updates()

    run = features_compute(actor="test", as_of=AS_OF + dt.timedelta(days=1))

    assert run.status == RunStatus.SUCCEEDED and run.customers == len(ids)
    # Every row rewritten by the upsert as a heap-only tuple: no index entry added.
    assert hot_updates() - hot_before == len(ids)
    after = CustomerFeatures.objects.all()
    assert {f.customer_id: f.recency_days - 1 for f in after} == before
    assert {f.feature_run_id for f in after} == {run.pk}


def test_rows_of_customers_who_lost_consent_go_in_the_same_run():
    ids = population()
    features_compute(actor="test", as_of=AS_OF)
    grant_profiling(ids[:3], granted=False)  # the purge hook runs after commit: rows stay

    run = features_compute(actor="test", as_of=AS_OF)

    assert run.removed == 3 and run.customers == len(ids) - 3
    assert set(scores()) == set(ids[3:])
    # Scored in the chunk over the customers still allowed, as a run on an empty table does.
    assert scores() == fresh_scores(AS_OF)


def test_a_withdrawal_racing_the_run_is_removed_and_rfm_rescored():
    ids = population()
    run = feature_run_create(actor="test", as_of=AS_OF, enqueue=False)
    with transaction.atomic():
        written = feature_sql.features_compute_chunk(
            run_id=run.pk, as_of=AS_OF, low=None, high=None, score_rfm=True
        )
        # Withdrawn after the run selected its customers, before it removes stale rows.
        grant_profiling(ids[:2], granted=False)
        racing = scores()
        _feature_run_finish(run, written=written, chunks=1, scored=True)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.removed == 2 and run.customers == len(ids)
    assert set(scores()) == set(ids[2:])
    assert scores() != {k: v for k, v in racing.items() if k in set(ids[2:])}
    assert scores() == fresh_scores(AS_OF)


def test_stale_removal_counts_what_the_run_wrote():
    ids = population(10)
    first = features_compute(actor="test", as_of=AS_OF)
    run = feature_run_create(actor="test", as_of=AS_OF, enqueue=False)
    with transaction.atomic():
        feature_sql.features_compute_chunk(
            run_id=run.pk, as_of=AS_OF, low=None, high=ids[4], score_rfm=False
        )
        # ids[5:] still carry the first run's id; ids[0] withdraws after being written.
        grant_profiling(ids[:1], granted=False)
        stale = feature_sql.features_remove_stale(run_id=run.pk)

    assert stale == feature_sql.StaleRows(removed=6, written_by_run=1)
    assert set(scores()) == set(ids[1:5])
    assert first.pk != run.pk


def test_chunk_bounds_skip_the_consent_pass_when_everyone_fits_in_one_chunk():
    ids = population(12)

    assert feature_sql.chunk_bounds(12) == [(None, None)]
    bounds = feature_sql.chunk_bounds(5)
    assert len(bounds) == 3 and bounds[0][0] is None and bounds[-1][1] is None
    assert [b[1] for b in bounds[:-1]] == [ids[4], ids[9]]


def test_a_failed_chunk_leaves_no_work_tables_and_the_old_features():
    population(10)
    features_compute(actor="test", as_of=AS_OF)
    old = scores()
    run = feature_run_create(actor="test", as_of=AS_OF + dt.timedelta(days=1), enqueue=False)
    with connection.cursor() as cursor:
        # A stale-removal statement that fails, for real, inside the run's transaction.
        cursor.execute(
            "CREATE FUNCTION pg_temp.fail() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER fail BEFORE DELETE ON {CustomerFeatures._meta.db_table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.fail()"
        )

    with pytest.raises(Exception, match="boom"):
        feature_run_execute(run_id=run.pk)

    assert FeatureRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert scores() == old
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'seg\\_%'")
        assert cursor.fetchone()[0] == 0


def test_a_rerun_inserts_new_customers_and_updates_known_ones():
    ids = population(10)
    features_compute(actor="test", as_of=AS_OF)
    from cdp.profiles.services import customer_create

    newcomers = [customer_create(actor="test", country="GB").id for _ in range(3)]
    grant_profiling(newcomers)

    run = features_compute(actor="test", as_of=AS_OF + dt.timedelta(days=1))

    assert run.customers == 13 and run.removed == 0
    rows = CustomerFeatures.objects.all()
    assert {f.customer_id for f in rows} == set(ids) | set(newcomers)
    assert {f.feature_run_id for f in rows} == {run.pk}
    assert {f.as_of for f in rows} == {AS_OF + dt.timedelta(days=1)}


def test_deleting_a_feature_run_keeps_its_rows_without_the_reference():
    population(5)
    run = features_compute(actor="test", as_of=AS_OF)

    FeatureRun.objects.filter(pk=run.pk).delete()

    assert CustomerFeatures.objects.count() == 5
    assert set(CustomerFeatures.objects.values_list("feature_run_id", flat=True)) == {None}
