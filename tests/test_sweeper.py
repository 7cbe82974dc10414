"""The sweep's jobs: Hydra's product, each plugin field kept for the options that have it."""

import re

import pytest
from conftest import compose

from polyexp.core.errors import ConfigError
from polyexp.core.settings import plan_from
from polyexp.run.command_line import parse
from polyexp.run.job import run_name
from polyexp.sweep.parent import sweep_key, sweep_name
from polyexp.sweep.sweeper import expand

DEFAULTS = {"data": "blobs", "model": "mlp", "optimizer": "sgd", "window": "last", "averaging": "equal"}


def jobs(*overrides: str, **choices: str) -> list[list[str]]:
    return expand(parse(overrides), {**DEFAULTS, **choices})


def test_a_field_applies_to_the_averagings_that_have_it():
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
    assert sweep_name(parse(overrides)) == "sweep exp alpha=1,2,4"
    named = sweep_name(parse(["seeds=10", "data=digits", "averaging=equal,linear"]))
    assert named == "sweep seeds=10 data=digits equal,linear"



def plans(*jobs: tuple[str, ...]) -> list:
    return [plan_from(compose(job)) for job in jobs]


def test_a_sweep_is_known_again_by_its_jobs_configs_as_the_schema_says():
    alphas = plans(("averaging=exp", "averaging.alpha=1"), ("averaging=exp", "averaging.alpha=2"))
    key = sweep_key("polyexp", alphas)
    assert key == sweep_key("polyexp", alphas[::-1])  # the order of the jobs does not matter
    # threads and tracking never change a number (Affects.NOTHING): the same sweep
    assert key == sweep_key("polyexp", plans(("averaging=exp", "averaging.alpha=2", "threads=1"),
                                             ("averaging=exp", "averaging.alpha=1", "tracking.skip_finished=false")))
    # alpha=2.0 is alpha=2 once the schema has typed it
    assert key == sweep_key("polyexp", plans(("averaging=exp", "averaging.alpha=1.0"), ("averaging=exp",)))
    assert key != sweep_key("polyexp", alphas[:1])
    assert key != sweep_key("other", alphas)
    assert key != sweep_key("polyexp", alphas, searched=list(parse(["averaging.alpha=interval(1,2)"])))


def test_a_fixed_field_of_a_swept_group_applies_to_the_options_that_have_it():
    assert jobs("averaging=equal,exp", "averaging.alpha=4") == [
        ["averaging=equal"], ["averaging=exp", "averaging.alpha=4"]]
    assert sweep_name(parse(["averaging=equal,exp", "averaging.alpha=4"])) == "sweep equal,exp alpha=4"


def test_repeated_values_are_repeated_jobs_as_in_hydra():
    assert jobs("seed=1,1") == [["seed=1"], ["seed=1"]]
    assert jobs("averaging=exp,exp", "averaging.alpha=3") == [["averaging=exp", "averaging.alpha=3"]] * 2


def test_a_job_and_its_sweep_are_named_by_one_function():
    overrides = ["seeds=3", "averaging=exp", "averaging.alpha=2", "hydra.job.chdir=false",
                 "tracking.uri=sqlite:////tmp/m.db", "cache.dir=/tmp/c", "threads=1"]  # where, not what: unnamed
    assert run_name("exp", overrides, None) == "exp seeds=3 alpha=2"
    assert run_name("exp", overrides, ["averaging.alpha"]) == "exp alpha=2"
    assert run_name("exp", ["+averaging.alpha=7.180374727086953"], None) == "exp alpha=7.18037"
    assert sweep_name(parse(overrides)) == "sweep seeds=3 exp alpha=2"


def test_another_apps_config_gets_hydras_basic_sweep_with_its_own_fields():
    from omegaconf import OmegaConf

    from hydra_plugins.polyexp_sweeper import PolyexpSweeper

    overrides = parse(["model=mlp", "model.foo=1,2", "x=1,1"]).overrides
    with pytest.raises(ConfigError, match=r"model\.foo is not a field of the chosen model"):
        jobs("model=mlp", "model.foo=1,2")  # on polyexp's config, mlp has no field foo
    sweeper = PolyexpSweeper(max_batch_size=2)
    sweeper.config = OmegaConf.create({"model": {"foo": 0}, "x": 0})
    assert sweeper.split_arguments(overrides, sweeper.max_batch_size) == [
        [["model=mlp", "model.foo=1", "x=1"], ["model=mlp", "model.foo=1", "x=1"]],
        [["model=mlp", "model.foo=2", "x=1"], ["model=mlp", "model.foo=2", "x=1"]],
    ]


def test_the_command_line_is_parsed_in_one_module_and_never_rewritten():
    from conftest import ROOT

    sources = [*(ROOT / "polyexp").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
    parsing = sorted(str(p.relative_to(ROOT)) for p in sources if "OverridesParser" in p.read_text())
    assert parsing == ["polyexp/run/command_line.py"]
    assert not [p for p in sources if re.search(r"sys\.argv(\[[^]]*\])?\s*=[^=]", p.read_text())]  # no rewrite


def test_the_command_line_check_refuses_an_option_no_plugin_has_with_the_close_match():
    from polyexp.hydra_setup import check_command_line

    with pytest.raises(ConfigError, match=r"^model=cnnn: no such model option \(did you mean cnn\?\); options: cnn"):
        check_command_line(parse(["model=mlp,cnnn", "-m"]))
    with pytest.raises(ConfigError, match=r"^averaging=exponential: no such averaging option \(did you mean exp\?\)"):
        check_command_line(parse(["averaging=exponential"]))
    check_command_line(parse(["averaging=glob(*)", "-m"]))  # a group's options as Hydra lists them: Hydra's
    check_command_line(parse(["~averaging", "hydra/launcher=nope"]))  # a deletion; Hydra's own groups
    check_command_line(parse(["--config-dir", "mine", "averaging=my_preset"]))  # options of the user's configs
    with pytest.raises(ConfigError, match=r"^epoch is not a polyexp setting \(did you mean epochs\?\)"):
        check_command_line(parse(["epoch=3"]))
