"""Start-up imports neither scikit-learn, SciPy nor NumPy.

Every web worker, management command (`import_csv` included) and Celery worker loads the
segmentation apps; importing the numeric libraries there cost each of them about 1.7 s (5 s from
a cold disk) although most never cluster, train or score. Each check runs a fresh interpreter,
because this test process has imported them long ago.
"""

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

from segmentation.ml.recommend import Strategy

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"numpy", "scipy", "sklearn"}

# What a web worker (WSGI app, then the URLconf on the first request: admin and API views) and a
# Celery worker (its app, then every installed app's tasks module) import before doing any work.
STARTUP = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
import django
django.setup()
import cdp.wsgi
import cdp.urls
from cdp.celery import app
app.loader.import_default_modules()
print(json.dumps(sorted(sys.modules)))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cdp.settings"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_web_and_celery_start_up_without_numeric_libraries():
    loaded = set(json.loads(_run("-c", STARTUP).stdout))

    # The code that used to pull them in was loaded (so the check below means something).
    assert {
        "segmentation.admin",
        "segmentation.api.views",
        "segmentation.services",
        "segmentation.tasks",
        "segmentation.personalization.admin",
        "segmentation.personalization.api.views",
        "segmentation.personalization.services",
        "segmentation.personalization.selectors",
        "segmentation.personalization.tasks",
    } <= loaded
    assert _top_level(loaded) & HEAVY == set()


def test_manage_py_check_imports_no_numeric_library():
    result = _run("-X", "importtime", "manage.py", "check")

    # -X importtime logs `import` statements, not importlib.import_module (admin autodiscover,
    # app configs): the admin's own imports stand for it.
    imported = set(re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, flags=re.MULTILINE))
    assert {"segmentation.services", "segmentation.personalization.services"} <= imported
    assert _top_level(imported) & HEAVY == set()


def test_strategy_pickles_under_the_module_stored_models_name():
    # Strategy lives in segmentation.ml.names now; recommenders stored before (and after) must
    # keep referring to segmentation.ml.recommend.Strategy, byte for byte.
    data = pickle.dumps(Strategy.ITEM_KNN, protocol=pickle.HIGHEST_PROTOCOL)

    assert data == (
        b"\x80\x05\x959\x00\x00\x00\x00\x00\x00\x00\x8c\x19segmentation.ml.recommend\x94"
        b"\x8c\x08Strategy\x94\x93\x94\x8c\x08item_knn\x94\x85\x94R\x94."
    )
    assert pickle.loads(data) is Strategy.ITEM_KNN
