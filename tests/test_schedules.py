"""Learning-rate schedules, weight decay and windows by optimizer steps, against Keras and closed forms."""

import math
import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, compose, make_cli

from polyexp.core.data import DATASETS
from polyexp.core.errors import ConfigError
from polyexp.core.identity import trajectory_identity
from polyexp.core.models import MODELS
from polyexp.core.schedules import SCHEDULES, factors
from polyexp.core.settings import plan_from
from polyexp.core.training import train
from polyexp.core.window import WINDOWS

DATA = DATASETS["blobs"].bind({"n_val": 200})()
PER_EPOCH = 4  # 100 training rows in batches of 32


def build_model():
    return MODELS["mlp"].bind({})(DATA.num_features, DATA.num_classes)


def rates(name: str, epochs: int = 10, per_epoch: int = PER_EPOCH, **fields) -> np.ndarray:
    return factors(SCHEDULES[name].bind(fields), epochs, per_epoch)


def keras_rates(schedule: keras.optimizers.schedules.LearningRateSchedule, steps: int) -> np.ndarray:
    return np.array([float(schedule(t)) for t in range(steps)])


@pytest.mark.parametrize(("warmup", "final"), [(0, 0.0), (2, 0.1)])
def test_cosine_is_keras_cosine_decay(warmup, final):
    total, warm = 10 * PER_EPOCH, warmup * PER_EPOCH
    reference = keras.optimizers.schedules.CosineDecay(
        0.0 if warm else 1.0, decay_steps=total - warm, alpha=final, warmup_target=1.0 if warm else None,
        warmup_steps=warm)
    np.testing.assert_allclose(rates("cosine", warmup_epochs=warmup, final_factor=final),
                               keras_rates(reference, total), rtol=1e-6, atol=1e-7)


def test_step_is_keras_exponential_decay_in_stairs():
    reference = keras.optimizers.schedules.ExponentialDecay(1.0, 3 * PER_EPOCH, 0.5, staircase=True)
    np.testing.assert_allclose(rates("step", every_epochs=3, factor=0.5), keras_rates(reference, 10 * PER_EPOCH),
                               rtol=1e-6)


def test_cyclic_is_the_swa_papers_cyclical_rate():
    # Izmailov et al. 2018, eq. 2: a(i) = (1 - t(i)) a1 + t(i) a2, t(i) = (mod(i - 1, c) + 1) / c, i = 1, 2, ...
    a1, a2, c = 1.0, 0.05, 2 * PER_EPOCH
    expected = [(1 - t) * a1 + t * a2 for t in (((i - 1) % c + 1) / c for i in range(1, 10 * PER_EPOCH + 1))]
    np.testing.assert_allclose(rates("cyclic", cycle_epochs=2, low_factor=a2), expected)


def torch_swalr(swa_lr: float, anneal_epochs: int, strategy: str, count: int) -> list[float]:
    """torch.optim.swa_utils.SWALR.get_lr transcribed, from a rate of 1: the rate of each epoch from its start."""
    anneal = (lambda t: (1 - math.cos(math.pi * t)) / 2) if strategy == "cos" else (lambda t: t)
    lr, out = 1.0, []
    for step_count in range(1, count + 1):  # the scheduler steps once when made, then after every epoch
        step = max(1, step_count - 1) if anneal_epochs == 0 else step_count - 1
        prev_alpha = anneal(max(0, min(1, (step - 1) / max(1, anneal_epochs))))
        initial = swa_lr if prev_alpha == 1 else (lr - prev_alpha * swa_lr) / (1 - prev_alpha)
        alpha = anneal(max(0, min(1, step / max(1, anneal_epochs))))
        lr = swa_lr * alpha + initial * (1 - alpha)
        out.append(lr)
    return out


@pytest.mark.parametrize(("anneal_epochs", "strategy"), [(4, "cos"), (4, "linear"), (0, "cos")])
def test_swa_anneals_as_torchs_swalr(anneal_epochs, strategy):
    ours = rates("swa", epochs=20, per_epoch=1, start_epoch=5, swa_factor=0.2, anneal_epochs=anneal_epochs,
                 anneal=strategy)
    np.testing.assert_allclose(ours, [1.0] * 5 + torch_swalr(0.2, anneal_epochs, strategy, 15), rtol=1e-12)


def wsd_reference(total: int, warmup: int, decay: int, shape: str, final: float) -> list[float]:
    """Hugging Face's ``get_wsd_schedule`` lambda (transformers 4.50), transcribed, from a peak rate of 1."""
    out = []
    for step in range(total):
        if step < warmup:
            out.append(step / max(1, warmup))
        elif step < total - decay:
            out.append(1.0)
        else:
            progress = (step - (total - decay)) / max(1, decay)
            factor = {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * progress)),
                      "1-sqrt": 1.0 - math.sqrt(progress)}[shape]
            out.append(factor * (1.0 - final) + final)
    return out


@pytest.mark.parametrize(("warmup", "fraction", "shape", "final"), [
    (0, 0.2, "1-sqrt", 0.0), (2, 0.1, "linear", 0.0), (1, 0.5, "cosine", 0.1), (0, 1.0, "linear", 0.05)])
def test_wsd_is_the_papers_warmup_stable_decay(warmup, fraction, shape, final):
    ours = rates("wsd", epochs=20, warmup_epochs=warmup, decay_fraction=fraction, decay_shape=shape,
                 final_factor=final)
    total = 20 * PER_EPOCH
    decay = round(fraction * total)
    np.testing.assert_allclose(ours, wsd_reference(total, warmup * PER_EPOCH, decay, shape, final), rtol=1e-12)
    assert np.all(ours[warmup * PER_EPOCH : total - decay] == 1.0)  # the stable phase: the full rate
    assert ours[-1] > final and np.all(np.diff(ours[total - decay :]) < 0)  # decays to just above final


def test_a_wsd_whose_warm_up_and_decay_overlap_is_refused_naming_both_fields():
    with pytest.raises(ConfigError, match=r"schedule.warmup_epochs=8 and schedule.decay_fraction=0.3 leave no room"):
        rates("wsd", epochs=10, warmup_epochs=8, decay_fraction=0.3)


def keras_steps(seed: int, epochs: int, optimizer: keras.optimizers.Optimizer) -> list[list[np.ndarray]]:
    """A plain Keras model, ``train_on_batch`` in the loop's row order: the weights after every step."""
    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    weights = []
    for epoch in range(1, epochs + 1):
        rows = tf.argsort(tf.random.stateless_uniform([len(DATA.x_train)], seed=[seed, epoch])).numpy()
        for start in range(0, len(rows), 32):
            batch = rows[start : start + 32]
            model.train_on_batch(DATA.x_train[batch], DATA.y_train[batch])
            weights.append(model.get_weights())
    return weights


def assert_same_weights(ours: list[np.ndarray], theirs: list[np.ndarray]) -> None:
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_a_schedule_sets_every_steps_rate_as_keras_does(seeds):
    schedule = SCHEDULES["cosine"].bind({"warmup_epochs": 1, "final_factor": 0.1})
    trajectory = train(build_model, lambda: keras.optimizers.SGD(0.05, momentum=0.9), DATA, seeds=seeds, epochs=3,
                       batch_size=32, window=[3], schedule=schedule)
    for s, seed in enumerate(seeds):
        reference = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=2 * PER_EPOCH, alpha=0.1, warmup_target=0.05, warmup_steps=PER_EPOCH)
        theirs = keras_steps(seed, 3, keras.optimizers.SGD(reference, momentum=0.9))
        assert_same_weights(trajectory.seed_weights(s, 0), theirs[-1])


@pytest.mark.parametrize(("config", "keras_optimizer"), [
    ({"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.5},
     lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.5)),
    ({"name": "sgd", "weight_decay": 0.5}, lambda: keras.optimizers.SGD(0.01, momentum=0.9, weight_decay=0.5)),
], ids=["adamw", "sgd"])
def test_weight_decay_is_keras_own_for_every_seed_of_a_group(config, keras_optimizer):
    from polyexp.core.optimizers import OPTIMIZERS

    seeds = [2, 3]
    # weight_decay=0.5 shrinks the weights by about 4% over these 8 steps: far above the tolerance
    trajectory = train(build_model, OPTIMIZERS.bind(config), DATA, seeds=seeds, epochs=2, batch_size=32, window=[2])
    for s, seed in enumerate(seeds):
        assert_same_weights(trajectory.seed_weights(s, 0), keras_steps(seed, 2, keras_optimizer())[-1])


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_a_window_by_steps_keeps_the_weights_after_those_steps(seeds):
    window = WINDOWS["steps"].bind({"every": 5, "size": 3})(3)
    trajectory = train(build_model, lambda: keras.optimizers.SGD(0.01, momentum=0.9), DATA, seeds=seeds, epochs=3,
                       batch_size=32, window=window)
    assert trajectory.steps.tolist() == [12, 7, 2] and trajectory.epochs.tolist() == [3, 2, 1]
    for s, seed in enumerate(seeds):
        per_step = keras_steps(seed, 3, keras.optimizers.SGD(0.01, momentum=0.9))
        for member, step in enumerate([12, 7, 2]):
            assert_same_weights(trajectory.seed_weights(s, member), per_step[step - 1])


def test_what_depends_on_the_data_is_checked_when_it_is_loaded(monkeypatch):
    with pytest.raises(ConfigError, match=re.escape("window.size=3000 with window.every=1 spans 3000 optimizer "
                                                    "steps, more than the 2000 steps of training")):
        plan_from(compose(["window=steps", "window.size=3000"])).load_data()
    monkeypatch.setenv("POLYEXP_PLUGINS", "misbehaving_plugins")
    with pytest.raises(ConfigError, match="schedule=below_zero gives the rate factor -0.001 at step 1001 "
                                          r"\(epoch 251\): a learning rate must be >= 0"):
        plan_from(compose(["schedule=below_zero"])).load_data()


def test_the_schedule_is_part_of_the_trajectory_identity():
    keys = {trajectory_identity(plan_from(compose(overrides))).key for overrides in (
        [], ["schedule=cosine"], ["schedule=cosine", "schedule.final_factor=0.1"], ["optimizer.weight_decay=0.1"],
        ["window=steps"])}
    assert len(keys) == 5


@pytest.mark.slow
def test_schedules_with_adamw_and_a_window_by_steps_from_a_fresh_folder(tmp_path):
    cli = make_cli(tmp_path)
    result = cli.run("schedule=cosine,cyclic", "optimizer=adamw", "window=steps", "window.every=2", "seeds=3",
                     "epochs=20", "-m")
    assert result.returncode == 0, result.stderr
    assert "> 1 (step 80): single=" in result.stdout and "> 10 (step 62): single=" in result.stdout
    jobs = cli.jobs()
    assert sorted(run.data.params["schedule.name"] for run in jobs) == ["cosine", "cyclic"]
    assert all(run.info.status == "FINISHED" for run in jobs)
    for folder in {Path(run.data.tags["polyexp.output_dir"]) for run in jobs}:
        header, first = (folder / "results.csv").read_text().splitlines()[:2]
        assert header.startswith("seed,n,epoch,step,") and first.startswith("0,1,20,80,")
        assert (folder / "plots" / "learning_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_a_schedule_below_zero_fails_in_one_line_before_anything_is_logged(tmp_path):
    cli = make_cli(tmp_path)
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = {"POLYEXP_PLUGINS": "misbehaving_plugins", "PYTHONPATH": path}
    for args in (["schedule=below_zero"], ["schedule=constant,below_zero", "-m"]):  # the sweep's job 2
        result = cli.run(*args, env=env)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "schedule=below_zero gives the rate factor -0.001 at step 1001" in result.stderr
        assert cli.runs() == []
