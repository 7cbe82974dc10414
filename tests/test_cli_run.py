"""The default job through the real CLI, against a real SQLite store: what it prints and logs."""

import json
import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import Cli, compose, make_cli, metric_steps, table

from polyexp.core.data import DATASETS
from polyexp.core.identity import job_identity
from polyexp.core.settings import plan_from

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Cli, subprocess.CompletedProcess]:
    cli = make_cli(tmp_path_factory.mktemp("default"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=cli.workdir, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=cli.workdir, check=True)
    return cli, cli.run()


def test_prints_the_seed_table_with_the_seed_accuracies(default_run):
    _, result = default_run
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert [n for n, _, _ in rows] == list(range(1, 11))
    for _, single, ensemble in rows:
        assert 0.78 <= single <= 0.83 and 0.78 <= ensemble <= 0.83
    assert rows[0][1] == rows[0][2]  # one member: the average is the checkpoint itself
    assert "Traceback" not in result.stderr
    assert "selected on validation: n=" in result.stdout and "one seed, no interval: set seeds=10" in result.stdout


def test_a_normal_run_prints_nothing_from_tensorflows_start_up(default_run):
    _, result = default_run
    for noise in ("cuda", "oneDNN", "absl", "I0000", "W0000", "E0000", "cudart"):
        assert noise not in result.stderr, result.stderr
    assert "job: equal" in result.stderr and "trained 1 seed(s) x 500 epochs" in result.stderr


def test_logs_one_finished_run_with_params_tags_and_every_metric(default_run):
    cli, result = default_run
    (run,) = cli.runs()
    assert run.info.status == "FINISHED" and run.info.run_name == "equal"
    params = run.data.params
    assert params["data.name"] == "blobs" and params["data.n_samples"] == "1100"
    assert params["model.hidden"] == "[25]" and params["optimizer.momentum"] == "0.9"
    assert (params["epochs"], params["batch_size"], params["window.size"]) == ("500", "32", "10")
    tags = run.data.tags
    assert tags["polyexp.weighting"] == "equal" and len(tags["polyexp.config_hash"]) == 16
    assert tags["polyexp.trajectory"] == "trained" and tags["polyexp.overrides"] == ""
    assert tags["polyexp.job_key"] == job_identity(plan_from(compose())).key
    assert tags["polyexp.libraries"].startswith("tensorflow ") and "onednn" in tags["polyexp.platform"]
    assert "polyexp.threads" not in tags  # one job alone keeps every core
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cli.workdir, capture_output=True, text=True)
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()

    client = cli.client()
    printed = table(result.stdout)
    for key, column in (("test_single_acc", 1), ("test_average_acc", 2)):
        logged = metric_steps(client, run.info.run_id, key)
        assert sorted(logged) == list(range(1, 11))
        assert [round(logged[n], 3) for n in range(1, 11)] == [row[column] for row in printed]
    for split in ("val", "test"):
        for key in ("single_acc", "average_acc", "ensemble_acc", "single_loss", "average_loss", "ensemble_loss",
                    "gain_vs_last"):
            assert sorted(metric_steps(client, run.info.run_id, f"{split}_{key}")) == list(range(1, 11))
    for key in ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss"):
        assert sorted(metric_steps(client, run.info.run_id, key)) == list(range(1, 501))
    metrics = run.data.metrics
    val = metric_steps(client, run.info.run_id, "val_average_acc")
    test = metric_steps(client, run.info.run_id, "test_average_acc")
    single = metric_steps(client, run.info.run_id, "test_single_acc")
    n = int(metrics["selected_n"])
    assert val[n] == max(val.values()) and n == min(k for k, v in val.items() if v == val[n])  # on validation
    assert metrics["selected_test_acc"] == test[n] and metrics["selected_val_acc"] == val[n]
    assert metrics["selected_gain_vs_last"] == pytest.approx(test[n] - single[1])
    assert metrics["last_test_acc"] == single[1] == metric_steps(client, run.info.run_id, "test_acc")[500]
    assert not [key for key in metrics if "ci_low" in key]  # one seed: no interval is logged


def test_artifacts_hold_the_results_checkpoints_weights_model_and_plots(default_run, tmp_path):
    cli, _ = default_run
    (run,) = cli.runs()
    client = cli.client()
    folder = client.download_artifacts(run.info.run_id, "", str(tmp_path))
    names = {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()}
    assert {
        "config.yaml", "identity.json", "results.csv", "results_mean.csv", "summary.json", "history.csv",
        "weights.json", "checkpoints.npz", "averaged_model.keras",
        "plots/data.png", "plots/learning_curves.png", "plots/accuracy_vs_n.png", "plots/weights.png",
    } <= names
    job = Path(run.data.tags["polyexp.output_dir"])  # the same files, stored once: hard links into mlartifacts/
    stored = cli.workdir / "mlartifacts" / run.info.run_id / "artifacts"
    rewritten = {"polyexp_job.json"}  # the command writes the report again when the job ends: a new file
    assert all(os.path.samefile(job / name, stored / name) for name in names - rewritten)
    identity = json.loads((tmp_path / "identity.json").read_text())
    assert set(identity) == {"config", "code", "libraries", "platform"} and "polyexp.core.training" in identity["code"]

    weights = json.loads((tmp_path / "weights.json").read_text())["weights"]
    assert weights["10"] == pytest.approx([0.1] * 10) and weights["1"] == [1.0]

    checkpoints = np.load(tmp_path / "checkpoints.npz")
    assert checkpoints["epochs"].tolist() == list(range(500, 490, -1)) and checkpoints["seeds"].tolist() == [0]
    stacked = [checkpoints[f"weight_{i}"][0] for i in range(len(checkpoints["weight_names"]))]
    model = keras.models.load_model(tmp_path / "averaged_model.keras")
    expected = [np.mean(w.astype(np.float64), axis=0) for w in stacked]  # equal weights over the 10 members
    for loaded, computed in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(loaded, computed, rtol=1e-6)
    data = DATASETS["blobs"].bind({})()
    accuracy = np.mean(model.predict(data.x_test, verbose=0).argmax(axis=1) == data.y_test)
    assert accuracy == metric_steps(client, run.info.run_id, "test_average_acc")[10]

    results = (tmp_path / "results.csv").read_text().splitlines()
    assert results[0].startswith("seed,n,epoch,val_single_acc,val_single_loss,val_single_ece,test_single_acc,")
    assert "test_average_acc" in results[0] and "test_ensemble_ece" in results[0]
    assert results[1].startswith("0,1,500,") and len(results) == 11


def test_outputs_land_in_hydras_run_folder(default_run):
    cli, _ = default_run
    (folder,) = [p.parent for p in (cli.workdir / "outputs").rglob("results.csv")]
    assert (folder / "checkpoints.npz").exists() and (folder / ".hydra" / "config.yaml").exists()
    assert json.loads((folder / "polyexp_job.json").read_text())["status"] == "finished"


def test_a_corrupt_cache_entry_is_trained_again_to_the_same_numbers(default_run):
    cli, first = default_run
    (entry,) = cli.cache.rglob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # truncated, as a crash mid-copy would leave it
    again = cli.run()
    assert again.returncode == 0, again.stderr
    assert "is corrupt" in again.stderr and "training again" in again.stderr
    assert table(again.stdout) == table(first.stdout)  # same config and seed, same numbers
    runs = cli.runs()
    assert [r.data.tags["polyexp.trajectory"] for r in runs] == ["trained", "trained"]
    client = cli.client()
    curves = [metric_steps(client, r.info.run_id, "test_loss") for r in runs]
    assert curves[0] == curves[1]
    assert runs[0].data.tags["polyexp.job_key"] == runs[1].data.tags["polyexp.job_key"]
    assert len(entry.read_bytes()) > 200
