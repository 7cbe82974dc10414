"""Config composition as users compose it: the seed's defaults, typed fields, checked values."""

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from polyexp.config import plan
from polyexp.errors import ConfigError
from polyexp.window import window_epochs


def test_defaults_are_the_seed_tutorial():
    cfg = OmegaConf.to_container(compose(), resolve=True)
    assert cfg["data"] == {
        "name": "blobs", "n_samples": 1100, "centers": 3, "n_features": 2, "cluster_std": 2.0,
        "random_state": 2, "n_train": 100,
    }
    assert cfg["model"] == {"name": "mlp", "hidden": [25], "activation": "relu", "dropout": 0.0}
    assert cfg["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": False}
    assert cfg["window"] == {"size": 10, "stride": 1}
    assert cfg["averaging"] == {"name": "equal"}
    assert (cfg["epochs"], cfg["batch_size"]) == (500, 32)
    assert plan(compose()).window == list(range(500, 490, -1))


def test_groups_offer_every_registered_plugin():
    assert OmegaConf.to_container(compose(["averaging=exp"]).averaging) == {"name": "exp", "alpha": 2.0}
    assert compose(["averaging=exp", "averaging.alpha=4"]).averaging.alpha == 4.0
    assert compose(["data=digits"]).data.train_fraction == 0.5
    assert compose(["optimizer=adam"]).optimizer.learning_rate == 0.001
    assert compose(["window=strided"]).window.stride == 10
    assert compose(["model.hidden=[64,32]", "model.activation=tanh"]).model.hidden == [64, 32]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["averaging=exp", "averaging.alpha=abc"], "could not be converted to Float"),
        (["epochs=1.5"], "could not be converted to Integer"),
        (["averaging=nope"], "Could not find 'averaging/nope'"),
        (["averaging.alpha=2"], "Key 'alpha' not in 'averaging_equal'"),
        (["model.activation=wiggle"], None),
    ],
)
def test_wrong_types_fail_at_composition(overrides, message):
    if message is None:  # a str field accepts any text: the value check comes after composition
        with pytest.raises(ConfigError, match=r"model\.activation='wiggle' is not allowed: choose one of relu"):
            plan(compose(overrides))
        return
    with pytest.raises(ConfigCompositionException) as error:
        compose(overrides)
    assert message in str(error.value) + str(error.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["averaging=exp", "averaging.alpha=0"], "averaging.alpha=0.0 is not allowed: it must be > 0"),
        (["epochs=0"], "epochs=0 is not allowed: it must be >= 1"),
        (["batch_size=0"], "batch_size=0 is not allowed: it must be >= 1"),
        (["window.size=0"], "window.size=0 is not allowed: it must be >= 1"),
        (["window.stride=0"], "window.stride=0 is not allowed: it must be >= 1"),
        (["window.size=11", "epochs=10"], "window.size=11 with window.stride=1 spans 11 epochs, more than epochs=10"),
        (["window=strided", "epochs=90"], "spans 91 epochs, more than epochs=90"),
        (["model.hidden=[25,0]"], "model.hidden=[25, 0] is not allowed: it must each be >= 1"),
        (["optimizer.learning_rate=-1"], "optimizer.learning_rate=-1.0 is not allowed: it must be > 0"),
        (["optimizer.momentum=1"], "optimizer.momentum=1.0 is not allowed: it must be >= 0 and < 1"),
        (["data.n_train=0"], "data.n_train=0 is not allowed: it must be >= 1"),
        (["seed=-1"], "seed=-1 is not allowed: it must be >= 0 and <= 4294967295"),
        (["threads=0"], "threads=0 is not allowed: it must be >= 1"),
    ],
)
def test_values_out_of_range_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as error:
        plan(compose(overrides))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.n_train=1100"], "data.n_train=1100 is not allowed: it must be below the number of rows (1100)"),
        (["data.n_train=2"], "data.n_train=2 is not allowed: the training rows then lack class 1"),
        (["data=wine", "data.train_fraction=0.01"], "data.train_fraction=0.01 is not allowed"),
    ],
)
def test_unusable_splits_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as error:
        plan(compose(overrides)).load_data()
    assert message in str(error.value)


def test_window_epochs_newest_first_with_stride():
    assert window_epochs(500, 3, 1) == [500, 499, 498]
    assert window_epochs(100, 4, 10) == [100, 90, 80, 70]
    assert window_epochs(31, 4, 10) == [31, 21, 11, 1]


def test_config_hash_and_training_config_track_exactly_what_changes_the_numbers():
    base = plan(compose(["averaging=exp"]))
    other_alpha = plan(compose(["averaging=exp", "averaging.alpha=4"]))
    other_store = plan(compose(["averaging=exp", "tracking.experiment=x", "cache.enabled=false", "threads=1"]))
    other_seed = plan(compose(["averaging=exp", "seed=1"]))
    assert base.config_hash == other_store.config_hash
    assert base.config_hash != other_alpha.config_hash != other_seed.config_hash
    assert base.training_config == other_alpha.training_config == other_store.training_config
    assert base.training_config != other_seed.training_config
    assert "averaging" not in base.training_config
