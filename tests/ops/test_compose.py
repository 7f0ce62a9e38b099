"""docker-compose.yml is valid Compose and wires every application service the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE = BASE_DIR / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")

    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_defines_the_production_services(services: dict) -> None:
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_services_run_in_production_with_database_broker_and_keys(
    services: dict, name: str
) -> None:
    service = services[name]

    assert service["environment"]["CDP_ENV"] == "production"
    assert service["environment"]["DATABASE_URL"].startswith("postgres://")
    assert service["environment"]["DATABASE_URL"].endswith("@postgres:5432/cdp")
    assert service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert service["env_file"] == ".env"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_services_wait_for_healthy_backing_services_and_migrations(
    services: dict, name: str
) -> None:
    assert services[name]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


@pytest.mark.parametrize("name", ["postgres", "redis", "web", "worker", "beat"])
def test_every_long_running_service_has_a_healthcheck(services: dict, name: str) -> None:
    assert services[name]["healthcheck"]["test"]


def test_web_probes_healthz_with_python_and_serves_gunicorn(services: dict) -> None:
    web = services["web"]

    assert web["command"][:2] == ["gunicorn", "cdp.wsgi"]
    assert "--bind=0.0.0.0:8000" in web["command"]
    probe = " ".join(web["healthcheck"]["test"])
    assert "python" in probe
    assert "http://127.0.0.1:8000/healthz" in probe


def test_worker_consumes_the_default_queue_and_beat_schedules(services: dict) -> None:
    assert services["worker"]["command"][:6] == ["celery", "-A", "cdp", "worker", "-Q", "default"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "cdp", "beat"]


def test_backing_services_use_their_probes(services: dict) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_env_example_documents_every_secret_without_values() -> None:
    lines = (BASE_DIR / ".env.example").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    for name in ("SECRET_KEY", "CDP_KEKS", "CDP_INDEX_KEY", "CDP_AUDIT_KEY"):
        assert settings[name] == ""
