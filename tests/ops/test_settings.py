"""Start-up refuses a bad environment with an error that names the variable, never the value.

Each case runs Django in a subprocess, because settings are read once per process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from cdp.env import new_key

BASE_DIR = Path(__file__).resolve().parents[2]
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_ops"
SETUP = "import django; django.setup()"
# The deploy checks of cdp.checks, whether or not an AppConfig has imported the module yet.
CHECK_DEPLOY = (
    "import django; django.setup(); import cdp.checks; "
    "from django.core.management import execute_from_command_line; "
    "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])"
)
CONFIG_VARIABLES = (
    "CDP_ENV",
    "SECRET_KEY",
    "DATABASE_URL",
    "CDP_KEKS",
    "CDP_INDEX_KEY",
    "CDP_AUDIT_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CDP_VAR_DIR",
)


def run(tmp_path: Path, code: str = SETUP, **env: str) -> subprocess.CompletedProcess[str]:
    """Python with a clean configuration: only `env`, a Postgres URL and a private var dir."""
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    environ.update(DATABASE_URL=DATABASE_URL, CDP_VAR_DIR=str(tmp_path / "var"))
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def short_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode()


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "CDP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CDP_KEKS": f"k2:{new_key()},k1:{new_key()}",
        "CDP_INDEX_KEY": new_key(),
        "CDP_AUDIT_KEY": new_key(),
        "ALLOWED_HOSTS": "cdp.example.com",
    }
    env.update(overrides)
    return env


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_development_defaults_start(tmp_path: Path) -> None:
    result = run(tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "dev-keys.json").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1:not*base64!", "CDP_KEKS item 1 (k1) is not URL-safe base64"),
        ("k1:" + short_key(), "CDP_KEKS item 1 (k1) must decode to 32 bytes; it decodes to 16"),
        ("k1:{a},k1:{b}", "CDP_KEKS names key id 'k1' twice"),
        ("k1:{a},,k2:{b}", "CDP_KEKS is a comma-separated list with an empty item (item 2)"),
        ("{a}", "CDP_KEKS item 1 must look like 'id:base64key'"),
    ],
    ids=["not-base64", "wrong-length", "duplicate-id", "empty-item", "no-id"],
)
def test_bad_keks_stop_start_up_naming_the_variable(
    tmp_path: Path, value: str, message: str
) -> None:
    keks = value.format(a=new_key(), b=new_key())

    result = run(tmp_path, CDP_KEKS=keks)

    assert result.returncode == 1
    assert message in last_line(result.stderr)
    for item in keks.split(","):
        key = item.partition(":")[2]
        if key:
            assert key not in result.stderr


@pytest.mark.parametrize("value", ["not*base64!", short_key()], ids=["not-base64", "short"])
def test_bad_index_key_stops_start_up_naming_the_variable(tmp_path: Path, value: str) -> None:
    result = run(tmp_path, CDP_INDEX_KEY=value)

    assert result.returncode == 1
    assert "ImproperlyConfigured: CDP_INDEX_KEY " in last_line(result.stderr)
    assert value not in result.stderr


def test_bad_debug_value_stops_start_up(tmp_path: Path) -> None:
    result = run(tmp_path, DEBUG="maybe")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DEBUG must be one of 1/0, true/false, yes/no, on/off; got 'maybe'"
    )


def test_unknown_cdp_env_stops_start_up(tmp_path: Path) -> None:
    result = run(tmp_path, CDP_ENV="staging")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "CDP_ENV must be development, test or production; got 'staging'"
    )


def test_non_postgres_database_url_stops_start_up(tmp_path: Path) -> None:
    result = run(tmp_path, DATABASE_URL="sqlite:///db.sqlite3")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DATABASE_URL must point at PostgreSQL (postgres:// or postgresql://)"
    )


def test_production_without_secrets_names_every_missing_variable(tmp_path: Path) -> None:
    result = run(tmp_path, CDP_ENV="production", DATABASE_URL="")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: CDP_ENV=production needs these "
        "environment variables: SECRET_KEY, DATABASE_URL, CDP_KEKS, CDP_INDEX_KEY, CDP_AUDIT_KEY"
    )
    assert not (tmp_path / "var" / "dev-keys.json").exists()


def test_production_without_one_key_names_only_that_key(tmp_path: Path) -> None:
    env = production_env()
    del env["CDP_AUDIT_KEY"]

    result = run(tmp_path, **env)

    assert result.returncode == 1
    assert last_line(result.stderr).endswith("environment variables: CDP_AUDIT_KEY")


def test_production_with_fresh_keys_passes_the_deploy_checks(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES},
            "DATABASE_URL": DATABASE_URL,
            "CDP_VAR_DIR": str(tmp_path / "var"),
            **production_env(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_with_fresh_keys_passes_the_cdp_deploy_checks(tmp_path: Path) -> None:
    result = run(tmp_path, CHECK_DEPLOY, **production_env())

    assert result.returncode == 0, result.stderr


def test_production_with_development_keys_fails_the_deploy_checks(tmp_path: Path) -> None:
    assert run(tmp_path).returncode == 0  # development start-up writes var/dev-keys.json
    dev = json.loads((tmp_path / "var" / "dev-keys.json").read_text())
    env = production_env(
        SECRET_KEY=dev["SECRET_KEY"],
        CDP_KEKS=dev["CDP_KEKS"],
        CDP_INDEX_KEY=dev["CDP_INDEX_KEY"],
        CDP_AUDIT_KEY=dev["CDP_AUDIT_KEY"],
    )

    result = run(tmp_path, CHECK_DEPLOY, **env)

    assert result.returncode == 1
    for line in [
        "(cdp.E007) CDP_KEKS (dev1) is a development key from var/dev-keys.json.",
        "(cdp.E007) CDP_INDEX_KEY is a development key from var/dev-keys.json.",
        "(cdp.E007) CDP_AUDIT_KEY is a development key from var/dev-keys.json.",
        "(cdp.E008) SECRET_KEY is a development key.",
    ]:
        assert line in result.stderr
    for value in dev.values():
        assert value not in result.stderr
    assert dev["CDP_KEKS"].partition(":")[2] not in result.stderr
