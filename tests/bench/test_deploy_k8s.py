"""deploy/dagster.k8s.yaml: the production instance with Dagster's K8sRunLauncher, and the same run queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nurturehub_pipelines.instance import PRODUCTION_MAX_CONCURRENT_SYNCS, instance_config

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "dagster.k8s.yaml"


def test_the_k8s_instance_queues_runs_exactly_as_the_repo_dagster_yaml() -> None:
    config = yaml.safe_load(K8S.read_text())
    repo = yaml.safe_load((REPO / "dagster.yaml").read_text())
    launcher = config.pop("run_launcher")
    # Plain dagster-postgres, on the repo's database settings: the chart's daemon and webserver images do not
    # hold the project, so the repo's pooled storage class (nurturehub_pipelines.dagster_storage) is not there.
    assert config.pop("storage") == {"postgres": repo["storage"]["custom"]["config"]}
    shared = instance_config(PRODUCTION_MAX_CONCURRENT_SYNCS)
    del shared["run_launcher"]  # the repo's forkserver launcher is single-host; the chart launches Jobs
    assert config == shared  # tag limits, monitoring, no run retries, threads
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert launcher["config"]["run_k8s_config"]["job_spec_config"]["backoff_limit"] == 0  # one run, one outcome


def test_the_launcher_config_fits_dagster_k8s_schema() -> None:
    dagster_k8s = pytest.importorskip("dagster_k8s", reason="dagster-k8s is a deployment dependency only")
    from dagster._config import process_config, resolve_to_config_type

    config = yaml.safe_load(K8S.read_text())["run_launcher"]["config"]
    schema = resolve_to_config_type(dagster_k8s.K8sRunLauncher.config_type())
    result = process_config(schema, {**config, "job_namespace": "nurturehub"})
    assert result.success, result.errors
