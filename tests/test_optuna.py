"""Hydra's Optuna sweeper tunes on validation: it maximises each job's validation score."""

import csv
from pathlib import Path

import pytest
import yaml
from conftest import Cli, sweep_runs

pytestmark = pytest.mark.slow


def test_optuna_maximises_the_validation_score_with_every_trial_under_one_parent(cli: Cli):
    result = cli.run("hydra/sweeper=optuna", "averaging=exp", "averaging.alpha=interval(0.1,10)",
                     "hydra.sweeper.n_trials=3", "epochs=40", "window.size=4", "seeds=2", "-m")
    assert result.returncode == 0, result.stderr
    (parent,), trials = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED" and len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert sorted(r.data.tags["polyexp.trajectory"] for r in trials) == ["reused", "reused", "trained"]
    (sweep_dir,) = {p.parent for p in (cli.workdir / "multirun").rglob("optimization_results.yaml")}
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    validation = {r.data.params["averaging.alpha"]: r.data.metrics["selected_val_acc"] for r in trials}
    assert best["best_value"] == max(validation.values())  # maximised, and the objective is validation
    assert validation[str(best["best_params"]["averaging.alpha"])] == best["best_value"]
    rows = list(csv.DictReader(Path(sweep_dir / "sweep_results.csv").read_text().splitlines()))
    assert float(rows[0]["selected_val_acc"]) == best["best_value"] and rows[0]["rank"] in ("1", "1=")
