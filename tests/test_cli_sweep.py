"""Multiruns through the real CLI: one parent run per sweep, one training, resuming, failing jobs."""

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Cli, make_cli, metric_steps, table

pytestmark = pytest.mark.slow

SWEEP = ("averaging=exp", "averaging.alpha=1,2,4", "-m")


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory) -> tuple[Cli, subprocess.CompletedProcess]:
    cli = make_cli(tmp_path_factory.mktemp("sweep"))  # a store that does not exist yet
    return cli, cli.run(*SWEEP)


def children(cli: Cli) -> list:
    return [r for r in cli.runs() if "mlflow.parentRunId" in r.data.tags]


def test_the_readme_sweep_trains_once_and_logs_three_named_runs(alpha_sweep):
    cli, result = alpha_sweep
    assert result.returncode == 0, result.stderr
    runs = children(cli)
    assert [r.info.run_name for r in runs] == ["exp alpha=1", "exp alpha=2", "exp alpha=4"]
    assert [r.info.status for r in runs] == ["FINISHED"] * 3
    assert [r.data.tags["polyexp.trajectory"] for r in runs] == ["trained", "reused", "reused"]
    assert [r.data.params["averaging.alpha"] for r in runs] == ["1.0", "2.0", "4.0"]
    assert "reused the cached trajectory" in result.stderr
    assert "job 1/3: exp alpha=1" in result.stderr and "job 3/3: exp alpha=4" in result.stderr
    client = cli.client()
    singles = [metric_steps(client, r.info.run_id, "single_acc") for r in runs]
    ensembles = [metric_steps(client, r.info.run_id, "ensemble_acc") for r in runs]
    assert singles[0] == singles[1] == singles[2]  # one trajectory
    assert all(e[1] == singles[0][1] for e in ensembles)  # n = 1: the last checkpoint
    assert len(table(result.stdout)) == 30


def test_the_parent_run_holds_the_comparison(alpha_sweep, tmp_path):
    cli, _ = alpha_sweep
    (parent,) = [r for r in cli.runs() if r.data.tags.get("polyexp.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep averaging=exp averaging.alpha=1,2,4"
    assert {r.data.tags["mlflow.parentRunId"] for r in children(cli)} == {parent.info.run_id}
    assert parent.data.metrics["jobs_finished"] == 3 and parent.data.metrics["jobs_failed"] == 0
    client = cli.client()
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert names == {"sweep_results.csv", "sweep_comparison.png"}
    table_path = client.download_artifacts(parent.info.run_id, "sweep_results.csv", str(tmp_path))
    rows = list(csv.DictReader(Path(table_path).read_text().splitlines()))
    assert [r["run_name"] for r in rows] == ["exp alpha=1", "exp alpha=2", "exp alpha=4"]
    run_ids = [r.info.run_id for r in children(cli)]
    assert [r["run_id"] for r in rows] == run_ids
    best = [float(r["best_ensemble_acc"]) for r in rows]
    assert best == [max(metric_steps(client, i, "ensemble_acc").values()) for i in run_ids]


def test_outputs_land_in_multirun_date_time_n(alpha_sweep):
    cli, _ = alpha_sweep
    (sweep_dir,) = [p for p in (cli.workdir / "multirun").glob("*/*") if p.is_dir()]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2"]
    weights = json.loads((sweep_dir / "1" / "weights.json").read_text())["weights"]["3"]
    raw = np.exp(-np.arange(1, 4) / 2.0)
    assert weights == pytest.approx(raw / raw.sum())
    assert (sweep_dir / "sweep_comparison.png").stat().st_size > 10_000


def test_running_the_command_again_skips_finished_jobs(alpha_sweep):
    cli, _ = alpha_sweep
    before = {r.info.run_id for r in children(cli)}
    again = cli.run(*SWEEP)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipped, its config already has the FINISHED run") == 3
    assert {r.info.run_id for r in children(cli)} == before
    parent = [r for r in cli.runs() if r.data.tags.get("polyexp.role") == "sweep"][-1]
    assert parent.data.metrics["jobs_skipped"] == 3 and parent.info.status == "FINISHED"


def test_turning_skipping_off_runs_every_job(alpha_sweep):
    cli, _ = alpha_sweep
    count = len(children(cli))
    again = cli.run("averaging=exp", "averaging.alpha=1", "tracking.skip_finished=false", "-m")
    assert again.returncode == 0, again.stderr
    assert "skipped, its config" not in again.stderr and len(children(cli)) == count + 1


def test_failing_jobs_are_logged_and_the_rest_of_the_sweep_goes_on(cli):
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = {"POLYEXP_PLUGINS": "misbehaving_plugins", "PYTHONPATH": path}
    names = ["too_many", "negative", "nan_weight", "inf_weight", "all_zero", "raises"]
    result = cli.run(f"averaging=equal,{','.join(names)}", "epochs=20", "window.size=3", "-m", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    runs = {r.info.run_name: r for r in children(cli)}
    assert runs["equal"].info.status == "FINISHED"
    expected = {
        "too_many": "returned 2 weights for n=1",
        "negative": "returned a negative weight for n=1: -0.5 for member 1",
        "nan_weight": "returned a non-finite weight for n=1: nan",
        "inf_weight": "returned a non-finite weight for n=1: inf",
        "all_zero": "returned only zero weights for n=1",
        "raises": "failed: RuntimeError: boom",
    }
    for name, message in expected.items():
        run = runs[name]
        assert run.info.status == "FAILED"
        assert f"averaging plugin {name!r}" in run.data.tags["polyexp.error"]
        assert message in run.data.tags["polyexp.error"]
        assert f"job {names.index(name) + 2}/7 failed" in result.stderr
    (parent,) = [r for r in cli.runs() if r.data.tags.get("polyexp.role") == "sweep"]
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["jobs_failed"] == 6 and parent.data.metrics["jobs_finished"] == 1
    failed = parent.data.tags["polyexp.failed_jobs"].splitlines()
    assert len(failed) == 6 and failed[0].startswith("job 1 (too_many): averaging plugin 'too_many' returned")
