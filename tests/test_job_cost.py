"""What a job costs beyond its computation: one scorer per process and model, tags riding with the
metrics in as few store calls as MLflow allows (a real SQLite store)."""

import dataclasses

import numpy as np
import pytest
from conftest import compose

from polyexp.core.evaluation import Scorer
from polyexp.core.outcome import compute_outcome, scorer_for
from polyexp.core.settings import plan_from
from polyexp.run import tracking


def test_jobs_with_the_same_model_and_rows_share_one_scorer_and_score_as_a_fresh_one():
    plan = plan_from(compose(["epochs=5", "window.size=3", "data.n_val=50"]))
    data = plan.load_data()
    other_averaging = plan_from(compose(["epochs=5", "window.size=3", "data.n_val=50", "averaging=linear"]))
    assert scorer_for(plan, data) is scorer_for(other_averaging, data)
    moved = dataclasses.replace(data, x_train=data.x_train + 1)
    wider = plan_from(compose(["epochs=5", "window.size=3", "data.n_val=50", "model.hidden=[7]"]))
    assert scorer_for(plan, moved) is not scorer_for(plan, data)
    assert scorer_for(wider, data) is not scorer_for(plan, data)

    outcome = compute_outcome(plan, data)
    again = compute_outcome(other_averaging, data)  # the shared scorer, after another job used it
    fresh = Scorer(plan.model(data.num_features, data.num_classes), data.x_train)
    members = [w[0] for w in again.trajectory.checkpoints]  # seed 0's K checkpoints
    accuracy, _ = fresh(members, data.x_test, data.y_test)
    np.testing.assert_array_equal(outcome.scores["test_single_acc"][0], accuracy)
    np.testing.assert_array_equal(again.scores["test_single_acc"][0], accuracy)


@pytest.mark.slow
def test_tags_ride_with_the_first_metrics_in_full_batches(tmp_path):
    store = tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "cost", tmp_path)
    calls = []
    real = store.client.log_batch

    def counted(*args, **kwargs):
        calls.append((len(kwargs.get("metrics", [])), len(kwargs.get("tags", []))))
        return real(*args, **kwargs)

    store.client.log_batch = counted
    rows = [(f"m{i % 7}", i / 10, i // 7) for i in range(2500)]
    with tracking.tracked_run(store, "cost", {}) as run_id:
        tracking.log_metrics(store.client, run_id, rows, tags={"a": "1", "b": "2"})
    assert calls == [(998, 2), (1000, 0), (502, 0)]  # MLflow: 1,000 entries a call
    run = store.client.get_run(run_id)
    assert run.data.tags["polyexp.a"] == "1" and run.data.tags["polyexp.b"] == "2"
    for key in {k for k, _, _ in rows}:
        logged = sorted((m.step, m.value) for m in store.client.get_metric_history(run_id, key))
        assert logged == sorted((s, v) for k, v, s in rows if k == key)
