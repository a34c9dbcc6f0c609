"""The package layout and its import rule (docs/DESIGN.md "Layout")."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_serving_loads_no_torch():
    script = (
        "import sys, django; django.setup(); "
        "import recommender.serving.pipeline, recommender.serving.learned, "
        "recommender.api.views; "
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_every_sub_package_says_what_lives_there():
    for init in (ROOT / "recommender").glob("*/__init__.py"):
        if init.parent.name in {"migrations", "management"}:
            continue
        text = init.read_text().strip()
        assert text.startswith('"""') and len(text) > 40, f"{init} has no docstring"


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:]
