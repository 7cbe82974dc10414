"""Random values for every numeric field: each outcome is a clean run or one clean error."""

import itertools
import math
from collections import Counter
from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from polyexp.core.errors import PolyexpError
from polyexp.core.settings import plan_from
from polyexp.run import tracking
from polyexp.run.job import Job

pytestmark = pytest.mark.slow

ODD_FLOATS = st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf, 1e-300, 1e300])


def numbers(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Usable values as often as unusable ones, so that runs get exercised as much as errors."""
    return st.one_of(valid, invalid)


def floats(low: float, high: float, valid: tuple[float, float]) -> st.SearchStrategy[float]:
    return numbers(st.floats(*valid), st.one_of(st.floats(low, high, allow_nan=False), ODD_FLOATS))


FIELDS = {
    "epochs": numbers(st.integers(3, 12), st.integers(-3, 2)),
    "batch_size": numbers(st.integers(1, 150), st.integers(-2, 0)),
    "seed": numbers(st.integers(0, 2**32 - 1), st.integers(-5, 2**33)),
    "window.size": numbers(st.integers(1, 3), st.integers(-1, 14)),
    "window.stride": numbers(st.just(1), st.integers(-1, 4)),
    "averaging.alpha": floats(-2, 50, valid=(0.01, 50)),
    "optimizer.learning_rate": floats(-1, 1e5, valid=(1e-4, 0.5)),
    "optimizer.momentum": floats(-0.5, 1.5, valid=(0, 0.99)),
    "data.n_samples": numbers(st.integers(300, 1500), st.integers(-5, 299)),
    "data.n_train": numbers(st.integers(60, 200), st.integers(-5, 1200)),
    "data.cluster_std": floats(-1, 30, valid=(0.1, 5)),
    "model.hidden": st.lists(numbers(st.integers(1, 40), st.integers(-2, 0)), max_size=3),
    "model.dropout": floats(-0.5, 1.5, valid=(0, 0.5)),
}


def override(key: str, value: object) -> str:
    if isinstance(value, list):
        return f"{key}=[{','.join(map(str, value))}]"
    return f"{key}={value}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, tracking.Store]:
    folder = tmp_path_factory.mktemp("property")
    return folder, tracking.open_store(f"sqlite:///{folder / 'mlflow.db'}", "property", folder)


counter = itertools.count()


def test_any_numeric_values_give_a_clean_run_or_a_clean_error(store):
    outcomes: Counter[str] = Counter()
    examples(store, outcomes)
    # half the values are usable: a run that never trains (every example an error) is a broken runner
    assert outcomes["clean run"] >= 5, outcomes


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), min_size=1, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in keys})))
def examples(store: tuple[Path, tracking.Store], outcomes: Counter[str], values: dict) -> None:
    folder, tracking_store = store
    overrides = ["averaging=exp", "epochs=12", "window.size=3", "cache.enabled=false"]
    overrides += [override(k, v) for k, v in values.items()]
    try:
        plan = plan_from(compose(overrides))
        data = plan.load_data()
        from polyexp.run.runner import run_job

        before = len(runs(tracking_store))
        result = run_job(plan, data, Job(folder / f"job{next(counter)}", folder), tracking_store)
    except (ConfigCompositionException, PolyexpError) as error:
        event(f"clean error: {type(error).__name__}")
        outcomes[f"clean error: {type(error).__name__}"] += 1
        assert str(error).strip(), "an error must say what is wrong"
        assert "Traceback" not in str(error)
        return
    event("clean run")
    outcomes["clean run"] += 1
    assert result.status == "finished" and len(result.test_average_acc) == plan.config["window"]["size"]
    assert all(0.0 <= a <= 1.0 for a in result.test_average_acc)
    assert 1 <= result.summary["selected_n"] <= len(result.test_average_acc)
    after = runs(tracking_store)
    assert len(after) == before + 1 and after[0].info.status == "FINISHED"


def runs(store: tracking.Store) -> list:
    return store.client.search_runs([store.experiment_id], order_by=["attributes.start_time DESC"])
