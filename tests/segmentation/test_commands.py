"""Operator entry points: the management commands and the beat entry."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from segmentation.models import ClusteringRun, CustomerFeatures
from tests.segmentation.online_retail import DATA, grant_profiling, load_events, read_lines

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present"),
]


def test_commands_compute_features_and_cluster():
    customers = load_events(read_lines(lambda customer: customer % 50 == 0))
    grant_profiling(list(customers.values()))
    out = StringIO()

    call_command("compute_features", "--as-of", "2011-12-10", stdout=out)
    call_command("cluster_customers", "--params", '{"k": 2}', "--name", "cli", stdout=out)

    assert CustomerFeatures.objects.count() == len(customers)
    run = ClusteringRun.objects.get(name="cli")
    assert run.status == "succeeded" and run.k == 2 and run.trigger == "command"
    assert f"clustering run {run.pk}: succeeded" in out.getvalue()


def test_cluster_command_refuses_bad_input():
    with pytest.raises(CommandError, match="JSON"):
        call_command("cluster_customers", "--params", "{k: 2}")
    with pytest.raises(CommandError, match="algorithm"):
        call_command("cluster_customers", "--algorithm", "spectral")
    assert not ClusteringRun.objects.exists()


def test_beat_runs_the_nightly_refresh():
    entry = settings.CELERY_BEAT_SCHEDULE["segmentation-refresh"]

    assert entry["task"] == "segmentation.tasks.scheduled_refresh"
    from cdp.celery import app

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


def test_scheduled_refresh_computes_features_then_clusters():
    from segmentation.services import scheduled_refresh

    customers = load_events(read_lines(lambda customer: customer % 50 == 0))
    grant_profiling(list(customers.values()))

    run = scheduled_refresh()

    assert run.trigger == "schedule" and run.status == "succeeded"
    assert run.population == len(customers) == CustomerFeatures.objects.count()
