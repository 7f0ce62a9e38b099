"""The Celery application. Queues and time limits are set here, in one place."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Installed apps' tasks.py, plus the project's own operational tasks (cdp is not an app).
app.autodiscover_tasks()
app.autodiscover_tasks(["cdp"])
app.autodiscover_tasks(["cdp.ingest.imports"])  # CSV import tasks (a subpackage of ingest)
