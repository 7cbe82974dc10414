"""The sweep's jobs: Hydra's product, each plugin field kept for the options that have it."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from polyexp.core.errors import ConfigError
from polyexp.sweep.parent import sweep_key, sweep_name
from polyexp.sweep.sweeper import expand, sweep_fields_of_swept_groups

DEFAULTS = {"data": "blobs", "model": "mlp", "optimizer": "sgd", "window": "last", "averaging": "equal"}


def jobs(*overrides: str, **choices: str) -> list[list[str]]:
    return expand(OverridesParser.create().parse_overrides(list(overrides)), {**DEFAULTS, **choices})


def test_a_field_applies_to_the_weightings_that_have_it():
    assert jobs("averaging=equal,linear,exp", "averaging.alpha=1,2,4") == [
        ["averaging=equal"], ["averaging=linear"],
        ["averaging=exp", "averaging.alpha=1"], ["averaging=exp", "averaging.alpha=2"],
        ["averaging=exp", "averaging.alpha=4"],
    ]


def test_the_plain_product_is_hydras():
    assert jobs("seeds=1,2", "averaging=exp", "averaging.alpha=1,2") == [
        ["seeds=1", "averaging=exp", "averaging.alpha=1"], ["seeds=1", "averaging=exp", "averaging.alpha=2"],
        ["seeds=2", "averaging=exp", "averaging.alpha=1"], ["seeds=2", "averaging=exp", "averaging.alpha=2"],
    ]
    assert jobs("averaging.alpha=1,2", averaging="exp") == [["averaging.alpha=1"], ["averaging.alpha=2"]]


def test_every_group_works_this_way():
    assert jobs("data=blobs,moons", "data.cluster_std=1,2") == [
        ["data=blobs", "data.cluster_std=1"], ["data=blobs", "data.cluster_std=2"], ["data=moons"],
    ]


@pytest.mark.parametrize(("overrides", "message"), [
    (("averaging=equal,linear", "averaging.alpha=1,2"),
     "averaging.alpha is not a field of the chosen averaging (averaging=equal: it has no fields; "
     "averaging=linear: it has no fields)"),
    (("averaging.alpha=1",), "averaging.alpha is not a field of the chosen averaging (averaging=equal: it has no"),
    (("averaging=exp", "averaging.alpah=1,2"), "averaging.alpah is not a field of the chosen averaging "
                                               "(averaging=exp: its fields: alpha)"),
    (("averaging=exp", "averaging.alpha=interval(1,2)"), "averaging.alpha: INTERVAL_SWEEP sweeps need an "
                                                          "optimising sweeper (hydra/sweeper=optuna)"),
])
def test_a_field_no_chosen_option_has_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        jobs(*overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sweep_is_named_short_and_known_again_by_its_overrides():
    overrides = ["averaging=exp", "averaging.alpha=1,2,4", "hydra.sweep.dir=x"]
    assert sweep_name(overrides) == "sweep exp alpha=1,2,4"
    named = sweep_name(["seeds=10", "data=digits", "averaging=equal,linear"])
    assert named == "sweep seeds=10 data=digits equal,linear"
    assert sweep_key(overrides, "polyexp") == sweep_key(["averaging.alpha=1,2,4", "averaging=exp", "threads=1"],
                                                         "polyexp")
    assert sweep_key(overrides, "polyexp") != sweep_key(["averaging=exp", "averaging.alpha=1,2"], "polyexp")
    assert sweep_key(overrides, "polyexp") != sweep_key(overrides, "other")


@pytest.mark.parametrize(("arguments", "expected"), [
    (["averaging=equal,exp", "averaging.alpha=4", "-m"], ["averaging=equal,exp", "averaging.alpha=choice(4)", "-m"]),
    (["data=blobs,moons", "data.cluster_std=1.5", "seeds=3", "--multirun"],
     ["data=blobs,moons", "data.cluster_std=choice(1.5)", "seeds=3", "--multirun"]),
    # nothing to do: the group is not swept, the field is already swept, no multirun, another sweeper
    (["averaging=exp", "averaging.alpha=4", "-m"], None),
    (["averaging=equal,exp", "averaging.alpha=1,2", "-m"], None),
    (["averaging=equal,exp", "averaging.alpha=4"], None),
    (["hydra/sweeper=basic", "averaging=equal,exp", "averaging.alpha=4", "-m"], None),
    (["--config-name", "config", "averaging=equal,exp", "+averaging.beta=4", "-m"], None),
])
def test_a_fixed_field_of_a_swept_group_becomes_a_one_value_sweep(arguments, expected):
    assert sweep_fields_of_swept_groups(arguments) == (arguments if expected is None else expected)


def test_a_one_value_sweep_reads_as_its_value_in_the_sweep_name():
    assert sweep_name(["averaging=equal,exp", "averaging.alpha=choice(4)"]) == "sweep equal,exp alpha=4"
    assert jobs("averaging=equal,exp", "averaging.alpha=choice(4)") == [
        ["averaging=equal"], ["averaging=exp", "averaging.alpha=4"]]
