"""Config composition as users compose it: the seed's defaults, typed fields, checked values."""

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.models import build_model
from polyexp.core.registry import build
from polyexp.core.settings import CacheSettings, Settings, TrackingSettings, check_key, plan_from
from polyexp.core.window import check_window, spaced


def test_defaults_are_the_seed_tutorial():
    cfg = OmegaConf.to_container(compose(), resolve=True)
    assert cfg["data"] == {
        "name": "blobs", "n_samples": 1100, "centers": 3, "n_features": 2, "cluster_std": 2.0,
        "random_state": 2, "n_train": 100, "n_val": 1000,
    }
    assert cfg["model"] == {"name": "mlp", "hidden": [25], "activation": "relu", "dropout": 0.0, "batchnorm": False}
    assert cfg["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": False,
                                "weight_decay": 0.0}
    assert cfg["schedule"] == {"name": "constant"}
    assert cfg["window"] == {"name": "last", "size": 10, "stride": 1}
    assert cfg["averaging"] == {"name": "equal"}
    assert (cfg["epochs"], cfg["batch_size"], cfg["seed"], cfg["seeds"]) == (500, 32, 0, 1)
    assert (cfg["ema_decays"], cfg["swa_start"], cfg["recompute_bn"]) == (None, None, True)
    plan = plan_from(compose())
    assert plan.window == list(range(500, 490, -1))
    assert plan.settings == Settings()  # the settings the code reads are typed, with these defaults
    assert plan.settings.tracking == TrackingSettings() and plan.settings.cache == CacheSettings()
    assert plan.settings.seed_list == [0]


def test_groups_offer_every_registered_plugin():
    assert OmegaConf.to_container(compose(["averaging=exp"]).averaging) == {"name": "exp", "alpha": 2.0}
    assert compose(["averaging=exp", "averaging.alpha=4"]).averaging.alpha == 4.0
    assert compose(["data=digits"]).data.train_fraction == 0.5
    assert compose(["optimizer=adam"]).optimizer.learning_rate == 0.001
    assert compose(["window=strided"]).window.stride == 10
    assert compose(["model=cnn"]).model.filters == [16, 32]
    assert plan_from(compose(["seeds=3", "seed=7", "tracking.experiment=x"])).settings.seed_list == [7, 8, 9]
    assert compose(["model.hidden=[64,32]", "model.activation=tanh"]).model.hidden == [64, 32]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["averaging=exp", "averaging.alpha=abc"], "could not be converted to Float"),
        (["epochs=1.5"], "could not be converted to Integer"),
        (["averaging=nope"], "Could not find 'averaging/nope'"),
        (["seeds=two"], "could not be converted to Integer"),
        (["ema_decays=[abc]"], "could not be converted to Float"),
        (["model.activation=wiggle"], None),
    ],
)
def test_wrong_types_fail_at_composition(overrides, message):
    if message is None:  # a str field accepts any text: the value check comes after composition
        with pytest.raises(ConfigError, match=r"model\.activation='wiggle' is not allowed: choose one of relu"):
            plan_from(compose(overrides))
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
        (["seeds=0"], "seeds=0 is not allowed: it must be >= 1 and <= 10000"),
        (["seed=4294967295", "seeds=2"], "seed=4294967295 with seeds=2 reaches seed 4294967296, above 2**32-1"),
        (["ema_decays=[0.9,1.0]"], "ema_decays=[0.9, 1.0] is not allowed: it must each be > 0 and < 1"),
        (["ema_decays=[]"], "ema_decays=[] is not allowed: the list must not be empty"),
        (["swa_start=0"], "swa_start=0 is not allowed: it must be >= 1"),
        (["swa_start=501"], "swa_start=501 is not allowed: it must be <= epochs (500)"),
        (["data.n_val=0"], "data.n_val=0 is not allowed: it must be >= 1"),
        (["data=iris", "data.val_fraction=1"], "data.val_fraction=1.0 is not allowed: it must be > 0 and < 1"),
    ],
)
def test_values_out_of_range_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as error:
        plan_from(compose(overrides))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.n_train=1100"], "data.n_train=1100 is not allowed: it must be below the number of rows (1100)"),
        (["data.n_train=2"], "data.n_train=2 is not allowed: the training rows then lack class 1"),
        (["data=wine", "data.train_fraction=0.01"], "data.train_fraction=0.01 is not allowed"),
        (["data=iris", "data.val_fraction=0.01"], "data.val_fraction=0.01 is not allowed"),
        (["data=wine", "model=cnn"], "model=cnn needs images: (rows, height, width, channels) arrays"),
    ],
)
def test_unusable_splits_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as error:
        plan = plan_from(compose(overrides))
        data = plan.load_data()
        build_model(plan.model, data)
    assert message in str(error.value)


def test_windows_are_newest_first_with_stride():
    assert spaced(500, 3, 1) == [500, 499, 498]
    assert spaced(100, 4, 10) == [100, 90, 80, 70]
    assert spaced(31, 4, 10) == [31, 21, 11, 1]
    assert plan_from(compose(["window=strided", "window.size=3"])).window == [500, 490, 480]


@pytest.mark.parametrize(("returned", "message"), [
    (None, "returned something that is not a list of whole epochs"),
    (["x"], "returned something that is not a list of whole epochs"),
    ([10.9, 9.2], "returned something that is not a list of whole epochs"),
    ([], "returned no epochs"),
    ([11, 9], "returned epochs outside 1..10: [11, 9]"),
    ([9, 10], "must return distinct epochs, the latest first: [9, 10]"),
])
def test_a_window_plugin_that_returns_no_epochs_list_fails_in_one_line(returned, message):
    with pytest.raises(PluginError) as error:
        check_window(returned, 10, "window plugin 'mine'")
    assert str(error.value).startswith("window plugin 'mine' ") and message in str(error.value)


def test_a_nested_setting_is_named_by_its_dotted_key():
    with pytest.raises(ConfigError, match=r"^tracking\.bogus is not a setting; settings: experiment, "):
        build(Settings, {"tracking": {"bogus": 1}})
    settings = build(Settings, {"seeds": 3, "tracking": {"experiment": "x"}})
    assert settings == Settings(seeds=3, tracking=TrackingSettings(experiment="x"))


def test_a_key_added_with_plus_that_nothing_reads_is_refused_naming_the_close_match():
    with pytest.raises(ConfigError) as error:
        plan_from(compose(["+epoch=10"]))  # Hydra adds it; without this check the job trains for epochs=500
    assert str(error.value).startswith("epoch is not a polyexp setting (did you mean epochs?); settings: seed, ")
    assert "groups: data, model, optimizer, schedule, window, averaging" in str(error.value)
    with pytest.raises(ConfigError, match=r"^lr is not a polyexp setting; settings: "):
        plan_from(compose(["+lr=0.1"]))  # nothing close: no suggestion
    with pytest.raises(ConfigError, match=r"^tracking\.experimnt is not a setting \(did you mean tracking\.experiment"):
        plan_from(compose(["+tracking.experimnt=x"]))
    assert plan_from(compose(["+hydra.job.extra=1"])).settings == Settings()  # Hydra's own keys are Hydra's


@pytest.mark.parametrize(("key", "message"), [
    ("epoch", "epoch is not a polyexp setting (did you mean epochs?)"),
    ("averagin", "averagin is not a polyexp setting (did you mean averaging?)"),
    ("cache.dri", "cache.dri is not a setting (did you mean cache.dir?); settings: dir, enabled"),
    ("seed.x", "seed.x is not a setting: seed has no fields"),
    ("averaging.alpah", "averaging.alpah is not a field of any averaging option (did you mean averaging.alpha?); "
                        "`python -m polyexp.plugins averaging` lists each option's fields"),
])
def test_an_unknown_key_is_named_with_its_close_match(key, message):
    with pytest.raises(ConfigError) as error:
        check_key(key)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_known_keys_pass():
    for key in ("epochs", "tracking.uri", "averaging", "averaging.alpha", "averaging.name", "hydra.job.chdir"):
        check_key(key)
    check_key("averaging.alpah", group_fields=False)  # a sweep checks fields against the swept options
