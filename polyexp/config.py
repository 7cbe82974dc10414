"""The experiment's typed config, and the plan a composed config is turned into.

Hydra composes ``conf/config.yaml``: the schema :class:`ExperimentConfig` (training settings,
tracking, cache) and one option of each group. A plugin group's options are its registered plugins,
each stored in Hydra's ConfigStore under its name with the fields read off its signature, so
``averaging.alpha=abc`` fails at composition and a new plugin needs no YAML. ``plan`` then checks
the values against their bounds before any work starts::

    cfg = compose(["averaging=exp", "averaging.alpha=4"])   # as `python -m polyexp ...` would
    plan(cfg).weighting(3)     # [exp(-1/4), exp(-2/4), exp(-3/4)]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from polyexp.averaging import WEIGHTINGS
from polyexp.data import DATASETS, Dataset, check_dataset
from polyexp.models import MODELS
from polyexp.optimizers import OPTIMIZERS
from polyexp.registry import Ge, Le, Param, Registry, import_plugin_modules
from polyexp.window import PRESETS, Window, window_epochs

PLUGIN_GROUPS: tuple[Registry, ...] = (DATASETS, MODELS, OPTIMIZERS, WEIGHTINGS)


@dataclass
class TrackingConfig:
    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///<launch dir>/mlflow.db
    uri: Optional[str] = None  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
    experiment: str = "polyexp"
    # In a multirun, skip a job whose exact config already has a FINISHED run in the experiment.
    skip_finished: bool = True


@dataclass
class CacheConfig:
    enabled: bool = True
    # None: $POLYEXP_CACHE_DIR if set, else $XDG_CACHE_HOME/polyexp or ~/.cache/polyexp
    dir: Optional[str] = None  # noqa: UP045


@dataclass
class ExperimentConfig:
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    window: Window = MISSING
    averaging: Any = MISSING
    seed: int = 0
    epochs: int = 500
    batch_size: int = 32
    # TensorFlow threads per job; None: all cores, divided among a parallel launcher's workers
    threads: Optional[int] = None  # noqa: UP045
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)


# The parts of the config that decide the numbers; the rest (tracking, cache, threads) does not.
EXPERIMENT_KEYS = ("data", "model", "optimizer", "window", "averaging", "seed", "epochs", "batch_size")
TRAINING_KEYS = tuple(k for k in EXPERIMENT_KEYS if k != "averaging")

_SETTINGS = (
    Param("seed", int, bounds=(Ge(0), Le(2**32 - 1))),
    Param("epochs", int, bounds=(Ge(1),)),
    Param("batch_size", int, bounds=(Ge(1),)),
    Param("threads", int, bounds=(Ge(1),)),
)


def config_path() -> str:
    """Where ``conf/`` is: the source tree's folder when running from a checkout, else the package's.

    From the repository root, ``python -m polyexp`` imports the source folder even when the package is
    installed; the installed configs are then out of reach, so the checkout's are used.
    """
    checkout = Path(__file__).resolve().parents[1] / "conf"
    return str(checkout) if (checkout / "config.yaml").is_file() else "pkg://polyexp.conf"


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m polyexp OVERRIDES`` runs, composed in this process."""
    register_configs()
    source = config_path()
    if source.startswith("pkg://"):
        context = hydra.initialize_config_module(source.removeprefix("pkg://"), version_base="1.3")
    else:
        context = hydra.initialize_config_dir(source, version_base="1.3")
    with context:
        return hydra.compose("config", list(overrides))


def register_configs() -> None:
    """Store the schema, every plugin's config and the window presets in Hydra's ConfigStore."""
    import_plugin_modules()
    store = ConfigStore.instance()
    store.store(name="polyexp_schema", node=ExperimentConfig)
    for registry in PLUGIN_GROUPS:
        for plugin in registry:
            store.store(group=registry.group, name=plugin.name, node=plugin.config_class())
    for name, preset in PRESETS.items():
        store.store(group="window", name=name, node=preset)


@dataclass(frozen=True)
class Plan:
    """A checked experiment: each plugin with its config applied, and the window's epochs."""

    config: dict[str, Any]  # the resolved config, plain Python
    data: Callable[[], Dataset]
    model: Callable[[int, int], Any]
    optimizer: Callable[[], Any]
    weighting: Callable[[int], Sequence[float]]
    window: list[int]  # member 1 (the latest) first

    def load_data(self) -> Dataset:
        """The data plugin's dataset, checked: both splits non-empty, every class in training."""
        return check_dataset(self.data(), f"data plugin {self.config['data']['name']!r}")

    @property
    def strategy(self) -> str:
        return self.config["averaging"]["name"]

    @property
    def config_hash(self) -> str:
        """Identifies the experiment: equal for configs that give the same numbers."""
        return _digest({k: self.config[k] for k in EXPERIMENT_KEYS})

    @property
    def training_config(self) -> dict[str, Any]:
        """What decides the trained trajectory (the cache key's config part)."""
        return {k: self.config[k] for k in TRAINING_KEYS}


def plan(cfg: DictConfig) -> Plan:
    """Check every value of a composed config; raise ConfigError naming the first bad field."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(config, dict)
    for setting in _SETTINGS:
        if config.get(setting.name) is not None:
            setting.check(config[setting.name], setting.name)
    window = window_epochs(config["epochs"], config["window"]["size"], config["window"]["stride"])
    return Plan(
        config=config,
        data=DATASETS.bind(config["data"]),
        model=MODELS.bind(config["model"]),
        optimizer=OPTIMIZERS.bind(config["optimizer"]),
        weighting=WEIGHTINGS.bind(config["averaging"]),
        window=window,
    )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
