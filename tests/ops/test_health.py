"""Liveness and readiness probes against the real database and broker."""

from __future__ import annotations

import time

import pytest

from cdp.celery import app


def test_healthz_answers_ok_without_touching_the_database(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_broker_answer(client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.fixture
def unreachable_broker(monkeypatch):
    """Point the Celery app at a closed port for one test.

    Celery reads CELERY_BROKER_URL from the environment before its configuration, so both change.
    """
    closed = "redis://127.0.0.1:1/0"
    saved = app.conf.broker_url
    monkeypatch.setenv("CELERY_BROKER_URL", closed)
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    app.conf.broker_url = closed
    yield
    app.conf.broker_url = saved


@pytest.mark.django_db
def test_readyz_is_503_and_names_the_broker_when_it_is_unreachable(
    client, unreachable_broker
) -> None:
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "failing"},
    }
    assert elapsed < 3


def test_probes_refuse_post(client) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
