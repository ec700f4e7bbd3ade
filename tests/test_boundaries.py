"""Dependency boundary: the engine (router/) never imports the service's web or database stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("fastapi", "sqlmodel")
ENGINE_MODULES = (
    "router",
    "router.dispatch",
    "router.simulate",
    "router.cli",
    "router.policies.nearest",
    "router.policies.ortools_vrp",
)
# One fresh interpreter imports the modules one by one and reports, after each import, which
# forbidden modules are loaded: the first non-empty entry names the culprit.
PROBE = """
import importlib, json, sys
report = {}
for module in MODULES:
    importlib.import_module(module)
    report[module] = [name for name in FORBIDDEN if name in sys.modules]
print(json.dumps(report))
"""


def test_engine_import_leaves_web_stack_out() -> None:
    """Importing router and its entry modules in a fresh process loads no fastapi/sqlmodel."""
    code = f"MODULES = {list(ENGINE_MODULES)!r}\nFORBIDDEN = {list(FORBIDDEN)!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {module: [] for module in ENGINE_MODULES}
