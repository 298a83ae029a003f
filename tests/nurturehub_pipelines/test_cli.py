"""The `nurturehub` command as a user runs it: a real subprocess, JSON on stdout, errors on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from crm_resources.registry import CRMS, crm_name
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import integrations, users
from tests.support.cli import nurturehub

REPO = Path(__file__).resolve().parents[2]


def created(*args: str) -> dict[str, object]:
    done = nurturehub(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def integration_count() -> int:
    with db.engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(integrations)).scalar_one()


def test_org_user_and_integration_are_created_with_one_json_object_each(db_url: str) -> None:
    org = created("org", "create", "--name", "Harbour Lettings", "--owner-email", "Owner@Harbour.example")
    assert set(org) == {"org_id", "owner_user_id", "token"}
    admin = created("user", "add", "--org", str(org["org_id"]), "--email", "admin@harbour.example", "--role", "admin")
    assert set(admin) == {"user_id", "token"}
    added = created(
        "integration", "add", "--org", str(org["org_id"]), "--crm", "reapit", "--setting", "customer_id=SBOX"
    )
    assert set(added) == {"integration_id"}
    with db.engine().connect() as conn:
        stored = conn.execute(select(users.c.token_hash)).scalars().all()
        name = conn.execute(select(integrations.c.name)).scalar_one()
    assert org["token"] not in stored and admin["token"] not in stored  # only hashes are kept
    assert name == "Reapit"  # the display name defaults to the CRM's name


def test_a_second_owner_is_refused(db_url: str) -> None:
    org = created("org", "create", "--name", "Harbour", "--owner-email", "owner@harbour.example")
    refused = nurturehub("user", "add", "--org", str(org["org_id"]), "--email", "b@harbour.example", "--role", "owner")
    assert refused.returncode != 0 and refused.stdout == ""
    assert "already has an owner" in refused.stderr


def test_an_unknown_crm_is_refused_with_the_accepted_values_and_no_row(db_url: str) -> None:
    org = created("org", "create", "--name", "Harbour", "--owner-email", "owner@harbour.example")
    refused = nurturehub("integration", "add", "--org", str(org["org_id"]), "--crm", "salesforce")
    assert refused.returncode != 0 and refused.stdout == ""
    for crm in ("agentos", "reapit", "alto", "street", "loop", "openapi"):
        assert crm in refused.stderr
    assert integration_count() == 0


def test_a_missing_setting_is_refused_with_the_right_names_and_no_row(db_url: str) -> None:
    org = created("org", "create", "--name", "Harbour", "--owner-email", "owner@harbour.example")
    refused = nurturehub(
        "integration", "add", "--org", str(org["org_id"]), "--crm", "agentos", "--credential", "api_key=k"
    )
    assert refused.returncode != 0
    assert "short_name" in refused.stderr
    wrong = nurturehub(
        "integration",
        "add",
        "--org",
        str(org["org_id"]),
        "--crm",
        "openapi",
        "--setting",
        "base_url=http://x",
        "--credential",
        "password=p",
    )
    assert wrong.returncode != 0
    assert "token" in wrong.stderr and "client_id and client_secret" in wrong.stderr
    assert integration_count() == 0


def test_the_sync_demo_says_one_line_per_crm_and_keeps_dagsters_output_in_its_log(db_url: str, tmp_path: Path) -> None:
    done = nurturehub("demo", "--no-dagster", "--sandbox-port", "0", env={"DAGSTER_HOME": str(tmp_path / "dagster")})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])  # the last stdout line is for scripts
    outcomes = {sync["crm"]: sync["outcome"] for sync in answer["syncs"]}
    assert outcomes == {crm: "success" for crm in CRMS} | {"street": "error", "loop": "warning"}

    said = done.stderr.splitlines()
    by_crm = {crm: [line for line in said if line.startswith(f"  {crm_name(crm)} ")] for crm in CRMS}
    assert all(len(lines) == 1 for lines in by_crm.values()), said
    assert "written" in by_crm["reapit"][0] and "skipped" in by_crm["reapit"][0]
    assert "error" in by_crm["street"][0] and "rejected the credentials" in by_crm["street"][0]  # red: why
    assert "warning" in by_crm["loop"][0] and "2 skipped: malformed" in by_crm["loop"][0]  # amber: why
    for dagster_says in ("DEBUG", "STEP_FAILURE", "RUN_START", "Traceback", "Telemetry"):
        assert dagster_says not in done.stderr

    dagster_log = Path(os.environ["NURTUREHUB_HOME"]) / "logs" / "dagster.log"
    assert str(dagster_log) in done.stderr  # named, so a newcomer can find it
    logged = dagster_log.read_text()
    assert "RUN_START" in logged and "STEP_FAILURE" in logged  # Dagster's own log, Street's failure included


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},  # an embedded instance, not the production yaml
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
