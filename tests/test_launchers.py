"""Hydra's own launchers run polyexp's sweeps: joblib workers, submitit processes, a SLURM example."""

import os

import pytest
from conftest import Cli, make_cli, sweep_runs

pytestmark = pytest.mark.slow

SMALL = ("epochs=50",)


def test_joblib_runs_a_sweep_in_parallel_workers_against_a_fresh_store(tmp_path):
    cli = make_cli(tmp_path)  # no store yet: the jobs must not race to create it
    alphas = "1,2,3,4,5,6"
    result = cli.run("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "averaging=exp",
                     f"averaging.alpha={alphas}", *SMALL, "-m")
    assert result.returncode == 0, result.stderr
    assert "absl" not in result.stderr and "cuda" not in result.stderr  # no TensorFlow start-up lines
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 6
    assert sorted(r.info.run_name for r in jobs) == [f"exp alpha={a}" for a in alphas.split(",")]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["polyexp.threads"] for r in jobs} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert sorted(r.data.tags["polyexp.trajectory"] for r in jobs).count("trained") == 1


def test_submitit_local_runs_each_job_in_its_own_process(cli: Cli):
    result = cli.run("hydra/launcher=submitit_local", "averaging=exp", "averaging.alpha=1,2", *SMALL, "-m")
    assert result.returncode == 0, result.stderr
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.run_name for r in jobs) == ["exp alpha=1", "exp alpha=2"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert list((cli.workdir / "multirun").rglob(".submitit"))


def test_the_slurm_example_composes(cli: Cli):
    result = cli.run("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", "--package",
                     "hydra.launcher")
    assert result.returncode == 0, result.stderr
    assert "SlurmLauncher" in result.stdout and "partition: gpu" in result.stdout


def test_a_slurm_job_has_ended_when_the_controller_says_so_whatever_the_accounting_says():
    from polyexp.sweep.slurm import controller_state

    shown = "JobId=22 ArrayJobId=22 ArrayTaskId=2 JobName=x JobState={} Reason=None RunTime=00:00:24"
    assert controller_state("RUNNING", 0, shown.format("CANCELLED")) == "CANCELLED"
    assert controller_state("UNKNOWN", 0, shown.format("TIMEOUT")) == "TIMEOUT"
    assert controller_state("RUNNING", 0, shown.format("COMPLETING")) == "RUNNING"  # not yet ended
    assert controller_state("PENDING", 0, shown.format("RUNNING")) == "PENDING"
    assert controller_state("UNKNOWN", 1, "slurm_load_jobs error: Invalid job id specified") == "ENDED"
    assert controller_state("RUNNING", 1, "slurm_load_jobs error: Unable to contact slurm controller") == "RUNNING"
