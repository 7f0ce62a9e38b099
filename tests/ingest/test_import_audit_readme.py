"""Audit of issue #5: the README documents the import's commands, endpoints and settings, taken
from the code (a new option, route or setting without a line in the README fails here)."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver

from cdp.ingest.management.commands.import_csv import Command
from tests.conftest import BASE_DIR

README = (BASE_DIR / "README.md").read_text()
SECTION = README.split("## CSV imports", 1)[1].split("\n## ", 1)[0]


def test_every_import_csv_option_is_documented() -> None:
    parser = Command().create_parser("manage.py", "import_csv")
    own = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in _base_dests()
    ]

    assert {"--source", "--kind", "--mapping", "--async"} <= set(own)
    assert "import_csv FILE --source NAME --kind profiles|transactions" in README
    missing = [o for o in own if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", SECTION)]
    assert missing == []


def _base_dests() -> set[str]:
    from django.core.management.base import BaseCommand

    base = BaseCommand().create_parser("manage.py", "base")
    return {action.dest for action in base._actions}


def test_every_import_endpoint_is_documented() -> None:
    routes = sorted(
        "/api/v1/" + str(p.pattern).replace("<uuid:job_id>", "<id>")
        for p in _patterns(get_resolver().url_patterns, "")
        if "import" in str(p.pattern) and "consent" not in str(p.pattern)
    )

    assert routes == [
        "/api/v1/imports/",
        "/api/v1/imports/<id>/",
        "/api/v1/imports/<id>/errors",
        "/api/v1/imports/<id>/errors.csv",
    ]
    for route in routes:
        assert re.search(rf"^(POST|GET)\s+{re.escape(route)}\s", SECTION, re.M), route


def _patterns(patterns: list, prefix: str) -> list[URLPattern]:
    """URL patterns under /api/v1/, flattened (the imports' own routes only)."""
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            here = prefix + str(entry.pattern)
            if here.startswith("api/v1/") or "api/v1/".startswith(here):
                found += _patterns(entry.url_patterns, here)
        elif isinstance(entry, URLPattern) and prefix == "api/v1/":
            found.append(entry)
    return found


def test_every_import_setting_and_task_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (BASE_DIR / "cdp").rglob("*.py"))
    settings = sorted(set(re.findall(r"CDP_IMPORT_[A-Z_]+", code)))
    tasks = sorted(set(re.findall(r'name="(cdp\.ingest\.imports\.[a-z_]+)"', code)))

    assert "CDP_IMPORT_RETENTION_DAYS" in settings and len(tasks) == 3
    for name in settings:
        assert re.search(rf"^\| `{name}` \| `[^`]+` \| \S", SECTION, re.M), name
    for task in tasks:
        assert f"`{task}`" in SECTION or task.endswith("import_job_run"), task
