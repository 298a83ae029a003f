"""The code location imports only what a sync needs: every run worker imports it before its first step.

A no-change sync is ~0.1 s of work inside a run worker that spends most of its CPU importing, so a heavy
import the code location does not need (pandas for the daily report, the web app, migrations, the read
model for the retention rule) costs every scheduled sync of every integration.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Imported only where they are used: the web app and its templates (`nurturehub web`), Alembic (`db.upgrade`),
# the CRM sandbox (tests, demo), pandas and numpy (inside the health report's asset body), the read model
# (the page, and the retention op's body).
NOT_IMPORTED = (
    "starlette",
    "jinja2",
    "uvicorn",
    "alembic",
    "crm_sandbox",
    "pandas",
    "numpy",
    "nurturehub_pipelines.web",
    "nurturehub_pipelines.read_model",
    "nurturehub_pipelines.store.retention",
    "nurturehub_pipelines.assets.health_tables",
)


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `module` (a fresh one: this test process has
    imported most of them already)."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_code_location_leaves_out_what_a_sync_does_not_need() -> None:
    modules = imported_by("nurturehub_pipelines.definitions")
    assert "nurturehub_pipelines.sync.ops" in modules  # the probe sees the code location's own imports
    assert {name for name in NOT_IMPORTED if name in modules} == set()


def test_the_left_out_modules_are_still_there_for_their_users() -> None:
    """The guard is not vacuous: each left-out package is installed and imports on demand."""
    modules = imported_by("nurturehub_pipelines.assets.health_tables, nurturehub_pipelines.store.retention")
    assert {"pandas", "numpy", "nurturehub_pipelines.read_model"} <= modules
