"""`make demo`: the whole platform on one machine with nothing but Python.

Migrates the database (the embedded PostgreSQL under var/ unless DATABASE_URL is set), creates
an admin user once, then runs a Celery worker and the web server until Ctrl-C or SIGTERM, and
stops the worker, the server and the embedded PostgreSQL on the way out. Running it again
reuses the database, the keys and the admin user.

    python -m cdp.demo [--addr 127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TextIO

BASE_DIR = Path(__file__).resolve().parent.parent
ADMIN_USERNAME = "admin"
READY_SECONDS = 60
STOP_SECONDS = 20


class Stop(Exception):
    """Raised from the signal handler so every stage, start-up included, unwinds the same way."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def ensure_admin(*, username: str = ADMIN_USERNAME, out: TextIO = sys.stdout) -> str | None:
    """Create the superuser on the first run and return its random password, else None.

    The password is printed once and kept only as Django's hash; later runs say how to reset it.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        print(
            f"Admin user {username!r} exists. To set a new password: "
            f".venv/bin/python manage.py changepassword {username}",
            file=out,
        )
        return None
    password = secrets.token_urlsafe(18)
    user_model.objects.create_superuser(username=username, email="", password=password)
    print(
        f"Created admin user {username!r} with password {password} "
        "(shown once; only its hash is stored).",
        file=out,
    )
    return password


def _parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--addr must look like 127.0.0.1:8000; got {addr!r}")
    return host, int(port)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_http(url: str, children: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        _raise_if_exited(children)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {READY_SECONDS}s")


def _raise_if_exited(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, child in children.items():
        if child.poll() is not None:
            raise RuntimeError(f"the {name} exited with status {child.returncode}")


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for name, child in children.items():
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"The {name} did not stop within {STOP_SECONDS}s; killing it.", flush=True)
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the demo until a signal; 0 after a clean stop, 1 when a part failed."""
    parser = argparse.ArgumentParser(prog="python -m cdp.demo", description=__doc__)
    parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port of the web server")
    args = parser.parse_args(argv)
    host, port = _parse_addr(args.addr)
    if not _port_is_free(host, port):
        print(f"{host}:{port} is in use; stop what runs there or pass --addr.", file=sys.stderr)
        return 1

    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    embedded = not os.environ.get("DATABASE_URL")
    children: dict[str, subprocess.Popen[bytes]] = {}
    status = 0
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        print("Starting the database and applying migrations...", flush=True)
        django.setup()
        call_command("migrate", interactive=False, verbosity=1)
        password = ensure_admin()
        from cdp.ingest.imports.demo import demo_data_load

        demo_data_load()  # the bundled UCI Online Retail sample, through the CSV importer
        connections.close_all()

        # Own sessions: a terminal's Ctrl-C reaches only this process, which stops the children
        # in order (web, worker, then the database they use).
        children["worker"] = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cdp",
                "worker",
                "--queues",
                settings.CELERY_TASK_DEFAULT_QUEUE,
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=BASE_DIR,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        children["web server"] = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            # --insecure: serve the admin's static files with DEBUG off, as gunicorn would not.
            [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", args.addr],
            cwd=BASE_DIR,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://{host}:{port}"
        _wait_for_http(f"{base}/healthz", children)
        login = f"user {ADMIN_USERNAME}" + (f", password {password}" if password else "")
        print(
            "\nThe customer data platform is running:\n"
            f"  admin     {base}/admin/  ({login})\n"
            f"  API docs  {base}/api/docs/\n"
            f"  health    {base}/healthz  {base}/readyz\n"
            "Press Ctrl-C to stop the web server, the worker and the database.\n",
            flush=True,
        )
        while True:
            _raise_if_exited(children)
            time.sleep(0.5)
    except Stop as reason:
        print(f"\n{reason}: stopping...", flush=True)
    except RuntimeError as exc:
        print(f"Demo failed: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(children)
        if embedded:
            from django.db import connections

            from cdp.embedded import stop

            connections.close_all()
            stop(Path(os.environ.get("CDP_VAR_DIR") or BASE_DIR / "var"))  # as settings.VAR_DIR
            print("Embedded PostgreSQL stopped.", flush=True)
    print("Demo stopped.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
