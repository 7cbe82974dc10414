"""Multiruns through the real CLI: one parent run per sweep, one training, resuming, failing jobs."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Cli, make_cli, metric_steps

pytestmark = pytest.mark.slow

SWEEP = ("seeds=3", "averaging=exp", "averaging.alpha=1,2,4", "-m")


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory) -> tuple[Cli, subprocess.CompletedProcess]:
    cli = make_cli(tmp_path_factory.mktemp("sweep"))  # a store that does not exist yet
    return cli, cli.run(*SWEEP)


def test_the_readme_sweep_trains_the_seed_group_once_and_logs_three_named_runs(alpha_sweep):
    cli, result = alpha_sweep
    assert result.returncode == 0, result.stderr
    runs = cli.jobs()
    assert [r.info.run_name for r in runs] == ["exp alpha=1", "exp alpha=2", "exp alpha=4"]
    assert [r.info.status for r in runs] == ["FINISHED"] * 3
    assert [r.data.tags["polyexp.trajectory"] for r in runs] == ["trained", "reused", "reused"]
    assert [r.data.params["averaging.alpha"] for r in runs] == ["1.0", "2.0", "4.0"]
    assert "reused the cached trajectory" in result.stderr and "trained 3 seed(s) x 500 epochs" in result.stderr
    assert "job 1/3: exp alpha=1" in result.stderr and "job 3/3: exp alpha=4" in result.stderr
    client = cli.client()
    singles = [metric_steps(client, r.info.run_id, "test_single_acc") for r in runs]
    averages = [metric_steps(client, r.info.run_id, "test_average_acc") for r in runs]
    assert singles[0] == singles[1] == singles[2]  # one trajectory
    assert all(a[1] == singles[0][1] for a in averages)  # n = 1: the last checkpoint
    assert result.stdout.count("> 10: single=") == 3 and result.stdout.count("selected on validation: n=") == 3


def test_each_job_logs_means_and_intervals_over_its_seeds(alpha_sweep, tmp_path):
    cli, _ = alpha_sweep
    client = cli.client()
    run = cli.jobs()[1]
    folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    rows = list(csv.DictReader((folder / "results.csv").read_text().splitlines()))
    assert [(r["seed"], r["n"]) for r in rows] == [(str(s), str(n)) for s in range(3) for n in range(1, 11)]
    for key in ("test_average_acc", "val_average_acc", "test_ensemble_acc", "test_gain_vs_last"):
        mean, low, high = (metric_steps(client, run.info.run_id, key + part) for part in ("", "_ci_low", "_ci_high"))
        assert sorted(mean) == sorted(low) == sorted(high) == list(range(1, 11))
        assert all(low[n] <= mean[n] <= high[n] for n in mean)
    per_seed = np.array([[float(r["test_average_acc"]) for r in rows if r["n"] == str(n)] for n in range(1, 11)])
    mean = metric_steps(client, run.info.run_id, "test_average_acc")
    np.testing.assert_allclose([mean[n] for n in range(1, 11)], per_seed.mean(axis=1))
    half = 4.302653 * per_seed.std(axis=1, ddof=1) / np.sqrt(3)  # Student's t, 2 degrees of freedom
    high = metric_steps(client, run.info.run_id, "test_average_acc_ci_high")
    np.testing.assert_allclose([high[n] for n in range(1, 11)], per_seed.mean(axis=1) + half)
    metrics = run.data.metrics
    n = int(metrics["selected_n"])
    val = metric_steps(client, run.info.run_id, "val_average_acc")
    assert val[n] == max(val.values()) and metrics["selected_test_acc"] == mean[n]
    assert metrics["selected_test_acc_ci_low"] < metrics["selected_test_acc"] < metrics["selected_test_acc_ci_high"]


def test_the_parent_run_ranks_the_jobs_on_validation_with_their_test_intervals(alpha_sweep, tmp_path):
    cli, result = alpha_sweep
    (parent,) = cli.sweeps()
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep seeds=3 exp alpha=1,2,4"
    assert {r.data.tags["mlflow.parentRunId"] for r in cli.jobs()} == {parent.info.run_id}
    assert parent.data.metrics["jobs_finished"] == 3 and parent.data.metrics["jobs_failed"] == 0
    client = cli.client()
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert names == {"sweep_results.csv", "sweep_comparison.png"}
    table_path = client.download_artifacts(parent.info.run_id, "sweep_results.csv", str(tmp_path))
    rows = list(csv.DictReader(Path(table_path).read_text().splitlines()))
    runs = {r.info.run_id: r for r in cli.jobs()}
    validation = [runs[r["run_id"]].data.metrics["selected_val_acc"] for r in rows]
    assert validation == sorted(validation, reverse=True)
    # places as in sport: ties share one, marked "=" (these three jobs' seeds give a tie on validation)
    assert [r["rank"] for r in rows] == [f"{1 + sum(v > mine for v in validation)}{'=' * (validation.count(mine) > 1)}"
                                         for mine in validation]
    for row in rows:
        metrics = runs[row["run_id"]].data.metrics
        for key in ("selected_test_acc", "selected_test_acc_ci_low", "selected_test_acc_ci_high", "selected_n"):
            assert float(row[key]) == metrics[key]
    ranking = result.stdout[result.stdout.index("sweep: 3 jobs ranked on validation"):].splitlines()
    assert [line.split()[1:3] for line in ranking[2:5]] == [row["run_name"].split() for row in rows]


def test_outputs_land_in_multirun_date_time_n(alpha_sweep):
    cli, _ = alpha_sweep
    (sweep_dir,) = [p for p in (cli.workdir / "multirun").glob("*/*") if p.is_dir()]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2"]
    weights = json.loads((sweep_dir / "1" / "weights.json").read_text())["weights"]["3"]
    raw = np.exp(-np.arange(1, 4) / 2.0)
    assert weights == pytest.approx(raw / raw.sum())
    assert (sweep_dir / "sweep_comparison.png").stat().st_size > 10_000


def test_running_the_command_again_skips_finished_jobs_under_the_same_parent(alpha_sweep):
    cli, _ = alpha_sweep
    before = {r.info.run_id for r in cli.jobs()}
    (parent,) = cli.sweeps()
    again = cli.run(*SWEEP)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipped, its identity already has the FINISHED run") == 3
    assert "Downloading artifacts" not in again.stderr  # MLflow's bar for each report read back
    assert "continuing under the parent run" in again.stderr
    assert {r.info.run_id for r in cli.jobs()} == before
    (same,) = cli.sweeps()
    assert same.info.run_id == parent.info.run_id
    assert same.data.metrics["jobs_skipped"] == 3 and same.info.status == "FINISHED"
    assert "sweep: 3 jobs ranked on validation" in again.stdout


def test_turning_skipping_off_runs_every_job(alpha_sweep):
    cli, _ = alpha_sweep
    count = len(cli.jobs())
    again = cli.run("seeds=3", "averaging=exp", "averaging.alpha=1", "tracking.skip_finished=false", "-m")
    assert again.returncode == 0, again.stderr
    assert "skipped, its identity" not in again.stderr and len(cli.jobs()) == count + 1


def test_a_new_sweep_shows_the_job_an_earlier_sweep_finished(alpha_sweep):
    cli, _ = alpha_sweep
    earlier = next(r for r in cli.jobs() if r.info.run_name == "exp alpha=2" and r.info.status == "FINISHED")
    other = cli.run("seeds=3", "averaging=exp", "averaging.alpha=2,8", "-m")
    assert other.returncode == 0, other.stderr
    parent = cli.sweeps()[-1]
    assert parent.info.run_name == "sweep seeds=3 exp alpha=2,8" and parent.data.metrics["jobs_skipped"] == 1
    line = f"exp alpha=2 is run {earlier.info.run_id} (exp alpha=2) of sweep seeds=3 exp alpha=1,2,4"
    assert f"  reused: {line}; outputs: " in other.stdout  # under the ranking
    assert parent.data.tags["polyexp.reused_jobs"].startswith(line)
    sweep_dir = Path(parent.data.tags["polyexp.sweep_dir"])
    rows = {r["run_name"]: r for r in csv.DictReader((sweep_dir / "sweep_results.csv").read_text().splitlines())}
    assert rows["exp alpha=2"]["status"] == "skipped" and rows["exp alpha=2"]["reused_run_id"] == earlier.info.run_id
    assert rows["exp alpha=2"]["selected_n"] == str(int(earlier.data.metrics["selected_n"]))  # 8, not 8.0
    assert sorted(r["job"] for r in rows.values()) == ["1", "2"]
    reused = sweep_dir / "0" / "reused_outputs"  # its outputs, reachable from the new sweep's job folder
    assert reused.is_symlink() and (reused / "summary.json").is_file()
    assert reused.resolve() == Path(earlier.data.tags["polyexp.output_dir"]).resolve()


def test_failing_jobs_are_logged_and_the_rest_of_the_sweep_goes_on(cli):
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = {"POLYEXP_PLUGINS": "misbehaving_plugins", "PYTHONPATH": path}
    names = ["too_many", "negative", "nan_weight", "inf_weight", "all_zero", "raises"]
    result = cli.run(f"averaging=equal,{','.join(names)}", "epochs=20", "window.size=3", "-m", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    runs = {r.info.run_name: r for r in cli.jobs()}
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
    assert "Traceback" not in result.stderr
    (parent,) = cli.sweeps()
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["jobs_failed"] == 6 and parent.data.metrics["jobs_finished"] == 1
    failed = parent.data.tags["polyexp.failed_jobs"].splitlines()
    # numbered from 1, as in the lines "job 2/7 failed" above
    assert len(failed) == 6 and failed[0].startswith("job 2 (too_many): averaging plugin 'too_many' returned")


def test_equal_linear_and_exp_at_three_alphas_in_one_command(cli: Cli):
    result = cli.run("averaging=equal,linear,exp", "averaging.alpha=1,2,4", "epochs=50", "-m")
    assert result.returncode == 0, result.stderr
    assert [r.info.run_name for r in cli.jobs()] == ["equal", "linear", "exp alpha=1", "exp alpha=2",
                                                     "exp alpha=4"]
    assert sorted(r.data.tags["polyexp.trajectory"] for r in cli.jobs()) == ["reused"] * 4 + ["trained"]
    (parent,) = cli.sweeps()
    assert parent.info.run_name == "sweep equal,linear,exp alpha=1,2,4 epochs=50"
    assert parent.data.metrics["jobs_finished"] == 5

    # one alpha, not swept: Hydra alone would apply it to equal (the default) and fail
    result = cli.run("averaging=equal,exp", "averaging.alpha=4", "epochs=50", "-m")
    assert result.returncode == 0, result.stderr
    parents = cli.sweeps()
    assert "sweep equal,exp alpha=4 epochs=50" in [r.info.run_name for r in parents]


@pytest.mark.parametrize(("args", "message"), [
    (("averaging=exp,linear", "averaging.alpha=1,2", "averaging.beta=3,4"),
     "averaging.beta is not a field of the chosen averaging (averaging=exp: its fields: alpha; averaging=linear: "
     "it has no fields)"),
    (("averaging=exp", "averaging.alpha=1,-2"), "job 2 (averaging=exp averaging.alpha=-2): averaging.alpha=-2.0 "
                                                "is not allowed: it must be > 0"),
    (("data.n_train=100,1100",), "job 2 (data.n_train=1100): data.n_train=1100 is not allowed"),
])
def test_a_sweep_with_a_bad_job_runs_nothing_and_leaves_no_run(cli: Cli, args, message):
    result = cli.run(*args, "-m")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert cli.runs() == [] and not list(cli.workdir.rglob("polyexp_job.json"))


def test_two_identical_sweeps_at_once_keep_their_own_parents_and_never_end_each_others_jobs(cli: Cli):
    """Each sweep's job waits at its averaging until a gate file exists, so both sweeps are open, their
    jobs RUNNING, when the first of them ends."""
    gate = cli.workdir / "gate"
    cli.env.update(POLYEXP_PLUGINS="stalling_plugins", PYTHONPATH=str(ROOT / "tests"), POLYEXP_TEST_GATE=str(gate))
    processes, outputs = [], []
    for name in ("first", "second"):
        process = cli.start("averaging=gated", "epochs=20", f"hydra.sweep.dir=multirun/{name}", "-m")
        output = [line for line in _lines_until(process, "job 1/1:")]
        processes.append(process)
        outputs.append(output)
    deadline = time.monotonic() + 300  # only a hang: both jobs are waiting at the gate with their runs RUNNING
    while sum(r.info.status == "RUNNING" for r in cli.jobs()) < 2:
        assert time.monotonic() < deadline, "the jobs never started"
        time.sleep(0.2)
    # a third in the folder of the first (two sweeps started in the same second share Hydra's default one)
    third = cli.run("averaging=gated", "epochs=20", "hydra.sweep.dir=multirun/first", "-m")
    assert third.returncode != 0 and "Traceback" not in third.stderr
    assert "is in use by a running sweep" in third.stderr and "set hydra.sweep.dir" in third.stderr
    gate.touch()
    for process, output in zip(processes, outputs, strict=True):
        rest, _ = process.communicate(timeout=300)
        text = "".join(output) + rest
        assert process.returncode == 0, text
        assert "ERROR" not in text and "lost" not in text, text
    sweeps = cli.sweeps()
    assert len(sweeps) == 2 and [r.info.status for r in sweeps] == ["FINISHED", "FINISHED"]
    jobs = cli.jobs()
    assert [r.info.status for r in jobs] == ["FINISHED", "FINISHED"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {r.info.run_id for r in sweeps}
    assert not any("polyexp.error" in r.data.tags for r in jobs)


def _lines_until(process: subprocess.Popen, marker: str):
    for line in process.stdout:
        yield line
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never appeared")


def test_a_run_that_a_re_run_replaced_is_marked_superseded_and_jobs_never_started_are_counted(cli: Cli):
    """Ctrl-C while job 1 of 2 waits at its gate (its run RUNNING); the command again finishes both jobs."""
    gate = cli.workdir / "gate"
    cli.env.update(POLYEXP_PLUGINS="stalling_plugins", PYTHONPATH=str(ROOT / "tests"), POLYEXP_TEST_GATE=str(gate))
    command = ("averaging=gated", "epochs=20", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1", "-m")
    process = cli.start(*command)
    deadline = time.monotonic() + 300  # only a hang
    while [r.info.status for r in cli.jobs()] != ["RUNNING"]:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "1 failed, 1 never started (of 2 jobs)" in output
    (killed,) = cli.jobs()
    assert killed.info.status == "KILLED"

    gate.touch()
    again = cli.run(*command)
    assert again.returncode == 0, again.stderr
    for number, seed in ((1, 1), (2, 2)):  # each job's table under its name, joblib or not
        assert f"job {number}/2: gated seed={seed}:\n> n: test accuracy" in again.stdout
    jobs = {r.info.run_id: r for r in cli.jobs()}
    earlier = jobs.pop(killed.info.run_id)
    assert earlier.info.run_name == killed.info.run_name + " (superseded)"
    twin = jobs[earlier.data.tags["polyexp.superseded_by"]]
    assert twin.info.status == "FINISHED" and twin.info.run_name == killed.info.run_name
    assert sorted(r.info.status for r in jobs.values()) == ["FINISHED", "FINISHED"]
