"""segmentation.ml must stay free of Django so it can be tested and benchmarked alone."""

import subprocess
import sys

from tests.segmentation.ml.conftest import ROOT

MODULES = ["cluster", "names", "personas", "preprocess", "projection", "storage"]


def test_importing_ml_core_imports_no_django_module():
    code = (
        "import sys\n"
        + "".join(f"import segmentation.ml.{name}\n" for name in MODULES)
        + "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        + "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == ""
