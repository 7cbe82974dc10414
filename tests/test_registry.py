"""Registries: configs read off signatures, clear errors for unknown names and bad values."""

import dataclasses
import re
from typing import Annotated, Literal, Optional

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from polyexp.core.averaging import AVERAGINGS
from polyexp.core.data import DATASETS
from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.registry import Ge, Gt, Lt, Registry
from polyexp.core.schedules import SCHEDULES
from polyexp.core.window import WINDOWS


def make_registry() -> Registry:
    registry = Registry("averaging", call_args=("n",))

    @registry.register
    def tuned(
        n: int,
        *,
        scale: Annotated[float, Gt(0), Lt(10)] = 1.0,
        widths: list[Annotated[int, Ge(1)]] = (4, 8),
        mode: Literal["fast", "slow"] = "fast",
        label: Optional[str] = None,  # noqa: UP045 - the spelling users write on Python 3.9
        flag: bool = False,
    ) -> list[float]:
        """Tuned weights.

        More text that the summary leaves out."""
        return [scale] * n

    @registry.register(name="renamed")
    def untyped_default(n, power=2.0):
        return [1.0] * n

    return registry


def test_config_class_is_read_off_the_signature():
    plugin = make_registry()["tuned"]
    config = OmegaConf.structured(plugin.config_class())
    assert OmegaConf.to_container(config) == {
        "name": "tuned", "scale": 1.0, "widths": [4, 8], "mode": "fast", "label": None, "flag": False,
    }
    with pytest.raises(ValidationError):
        config.scale = "abc"
    with pytest.raises(ValidationError):
        config.widths = ["x"]
    assert plugin.summary == "Tuned weights."
    assert [p.describe() for p in plugin.params][:3] == [
        "float = 1.0 (> 0, < 10)", "list[int] = [4, 8] (each >= 1)", "str = 'fast' (one of ['fast', 'slow'])",
    ]


def test_a_default_without_a_hint_types_the_field():
    plugin = make_registry()["renamed"]
    field = {f.name: f for f in dataclasses.fields(plugin.config_class())}["power"]
    assert field.type is float and field.default == 2.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scale": 0.0}, "averaging.scale=0.0 is not allowed: it must be > 0 and < 10"),
        ({"scale": 10.0}, "averaging.scale=10.0 is not allowed: it must be > 0 and < 10"),
        ({"scale": float("inf")}, "averaging.scale=inf is not allowed: it must be a finite number"),
        ({"widths": [4, 0]}, "averaging.widths=[4, 0] is not allowed: it must each be >= 1"),
        ({"widths": []}, "averaging.widths=[] is not allowed: the list must not be empty"),
        ({"mode": "medium"}, "averaging.mode='medium' is not allowed: choose one of fast, slow"),
        ({"speed": 1}, "averaging.speed is not a field of averaging plugin 'tuned'; its fields: scale, widths, mode"),
        ({"scal": 1}, "averaging.scal is not a field of averaging plugin 'tuned' (did you mean averaging.scale?); "
                      "its fields: scale, widths, mode"),
    ],
)
def test_bind_names_the_field_and_what_is_allowed(config, message):
    with pytest.raises(ConfigError) as error:
        make_registry()["tuned"].bind(config)
    assert message in str(error.value)


def test_unknown_name_lists_the_available_ones_and_the_close_match():
    with pytest.raises(ConfigError) as error:
        OPTIMIZERS["nope"]
    assert str(error.value) == ("optimizer=nope: no such optimizer option; options: adam, adamw, "
                                "schedule_free_adamw, sgd")
    with pytest.raises(ConfigError, match=r"^optimizer=adan: no such optimizer option \(did you mean adam\?\)"):
        OPTIMIZERS["adan"]
    with pytest.raises(ConfigError, match=r"^averaging=exponential: no such averaging option \(did you mean exp\?\)"):
        AVERAGINGS.check_option("exponential")  # a longer name that starts with an option's


def test_a_field_of_another_option_is_refused_naming_the_options_that_have_it():
    with pytest.raises(ConfigError) as error:
        AVERAGINGS.bind({"name": "equal", "alpha": 2})
    assert str(error.value) == ("averaging.alpha is not a field of averaging=equal (it has no fields); alpha is a "
                                "field of averaging=exp: choose one of them")


def test_builtin_groups_and_options():
    assert {"blobs", "moons", "circles", "digits", "wine", "iris", "breast_cancer"} <= set(DATASETS.names())
    assert MODELS.names() == ["cnn", "mlp"]
    assert OPTIMIZERS.names() == ["adam", "adamw", "schedule_free_adamw", "sgd"]
    assert {"equal", "exp", "linear", "greedy_soup"} <= set(AVERAGINGS.names())
    assert all(AVERAGINGS[name].source == "built in" for name in ("equal", "exp", "linear", "greedy_soup"))
    assert WINDOWS.names() == ["last", "steps", "strided"]
    assert {"constant", "cosine", "cyclic", "step", "swa", "wsd"} <= set(SCHEDULES.names())  # tests add below_zero


def test_a_plugin_that_raises_becomes_a_plugin_error():
    registry = Registry("data")

    @registry.register
    def broken() -> None:
        raise ValueError("no such file")

    with pytest.raises(PluginError, match="data plugin 'broken' failed: ValueError: no such file"):
        registry["broken"].bind({})()


@pytest.mark.parametrize(
    ("define", "message"),
    [
        ("def f(): pass", "must take (n) first"),
        ("def f(n, *rest): pass", "*rest cannot be a config field"),
        ("def f(n, *, thing): pass", "parameter 'thing' needs a type hint"),
        ("def f(n, *, thing: dict = None): pass", "type <class 'dict'> is not supported"),
        ("def f(n, *, thing: int | str = 1): pass", "unions other than Optional[X] are not supported"),
    ],
)
def test_unusable_signatures_fail_at_registration(define, message):
    namespace: dict = {}
    exec(define, namespace)
    with pytest.raises(TypeError, match=re.escape(message)):
        Registry("averaging", call_args=("n",)).register(namespace["f"])


def test_registering_a_second_function_under_a_taken_name_fails():
    registry = make_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(lambda n: [1.0] * n, name="tuned")


def test_a_plugin_asks_for_context_by_naming_it_and_a_plain_one_stays_a_function_of_n():
    registry = Registry("averaging", call_args=("n",), context=("validation",))

    @registry.register
    def picky(n: int, validation: dict, *, boost: float = 1.0) -> list[float]:
        return [validation["score"] * boost] * n

    @registry.register
    def plain(n: int) -> list[float]:
        return [1.0] * n

    assert [p.name for p in registry["picky"].params] == ["boost"] and registry["picky"].context == ("validation",)
    assert registry["picky"].bind({"boost": 2.0})(2, validation={"score": 0.5}) == [1.0, 1.0]
    assert registry["plain"].bind({})(3, validation={"score": 0.5}) == [1.0, 1.0, 1.0]  # not asked, not passed
    with pytest.raises(PluginError, match="needs validation"):
        registry["picky"].bind({})(2)
