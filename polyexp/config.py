"""The experiment's typed config, and the plan a composed config is turned into.

Hydra composes ``conf/config.yaml``: the top-level :class:`Settings` and one option of each plugin
group (``data``, ``model``, ``optimizer``, ``window``, ``averaging``). Every field is declared once,
with its type, bounds and what it :class:`~polyexp.registry.Affects` in its hint: a plugin's fields
in its signature, the settings in the dataclasses below. From these declarations come the configs
Hydra stores (so ``averaging.alpha=abc`` fails at composition), the checks ``plan`` runs (so
``epochs=0`` fails before any work), the typed objects the code reads, and the identity of a result
(``polyexp.identity``)::

    cfg = compose(["averaging=exp", "averaging.alpha=4"])   # as `python -m polyexp ...` would
    experiment = plan(cfg)
    experiment.settings.epochs      # 500
    experiment.weighting(3)         # [exp(-1/4), exp(-2/4), exp(-3/4)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from polyexp.averaging import WEIGHTINGS
from polyexp.data import DATASETS, Dataset, check_dataset
from polyexp.errors import ConfigError
from polyexp.models import MODELS
from polyexp.optimizers import OPTIMIZERS
from polyexp.registry import (
    Affects,
    BoundPlugin,
    Ge,
    Gt,
    Le,
    Lt,
    Param,
    Registry,
    build,
    config_class,
    fields_of,
    import_plugin_modules,
)
from polyexp.window import WINDOWS, check_window

# One config group per registry; the group's name is the registry's.
GROUPS: tuple[Registry, ...] = (DATASETS, MODELS, OPTIMIZERS, WINDOWS, WEIGHTINGS)

Nothing = Affects.NOTHING


@dataclass(frozen=True)
class TrackingSettings:
    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///<launch folder>/mlflow.db
    uri: Optional[str] = None  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
    experiment: str = "polyexp"
    # In a multirun, skip a job whose identity already has a FINISHED run in the experiment.
    skip_finished: bool = True


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = True
    # None: $POLYEXP_CACHE_DIR if set, else $XDG_CACHE_HOME/polyexp or ~/.cache/polyexp
    dir: Optional[str] = None  # noqa: UP045


@dataclass(frozen=True)
class Settings:
    """The top-level settings. A field changes the trained trajectory unless its hint says otherwise."""

    seed: Annotated[int, Ge(0), Le(2**32 - 1)] = 0
    seeds: Annotated[int, Ge(1), Le(10_000)] = 1  # trains seed, seed+1, ..., seed+seeds-1 together
    epochs: Annotated[int, Ge(1)] = 500
    batch_size: Annotated[int, Ge(1)] = 32
    # Exponential moving averages of the weights kept during training, one per decay (None: none).
    ema_decays: Optional[list[Annotated[float, Gt(0), Lt(1)]]] = None  # noqa: UP045
    # Stochastic weight averaging: the equal mean of the weights after every epoch from this one.
    swa_start: Annotated[Optional[int], Ge(1)] = None  # noqa: UP045
    # Score the learning curves after every N-th epoch (and the window's and the last); None: every
    # epoch for one seed, every 10th for a group, where scoring every seed on every split dominates.
    curve_every: Annotated[Optional[int], Ge(1)] = None  # noqa: UP045
    # Recompute BatchNorm statistics of every averaged model with a pass over the training rows.
    recompute_bn: Annotated[bool, Affects.SCORING] = True
    # TensorFlow threads per job; None: all cores, divided among a parallel launcher's workers.
    threads: Annotated[Optional[int], Ge(1), Nothing] = None  # noqa: UP045
    verbose: Annotated[bool, Nothing] = False  # also show TensorFlow's start-up lines
    tracking: Annotated[TrackingSettings, Nothing] = field(default_factory=TrackingSettings)
    cache: Annotated[CacheSettings, Nothing] = field(default_factory=CacheSettings)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))


SETTINGS: tuple[Param, ...] = fields_of(Settings)


def experiment_config_class() -> type:
    """The schema Hydra composes: a field per plugin group, then the settings."""
    groups = [Param(registry.group, Any, "???") for registry in GROUPS]
    return config_class("ExperimentConfig", (*groups, *SETTINGS))


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
    """Store the schema and every plugin's config in Hydra's ConfigStore; register polyexp's sweeper."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.polyexp_sweeper import PolyexpSweeper

    Plugins.instance().register(PolyexpSweeper)  # whether or not Hydra's plugin scan found it
    import_plugin_modules()
    store = ConfigStore.instance()
    _store_optuna_preset(store)
    store.store(name="polyexp_schema", node=experiment_config_class())
    for registry in GROUPS:
        for plugin in registry:
            store.store(group=registry.group, name=plugin.name, node=plugin.config_class())


def _store_optuna_preset(store: ConfigStore) -> None:
    """``hydra/sweeper=optuna`` (Hydra's Optuna sweeper, when installed), set up for polyexp.

    A job returns its validation score (``selected_val_acc``), so the study maximises (Optuna's default
    is to minimise); trials run one after another and the sampler is seeded, so a command repeats its
    trials. A YAML file of the same name cannot do this: Hydra refuses to merge it with the plugin's schema.
    """
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import Direction, OptunaSweeperConf, TPESamplerConfig
    except ImportError:
        return

    @dataclass
    class PolyexpOptuna(OptunaSweeperConf):
        direction: Any = Direction.maximize
        n_jobs: int = 1

    @dataclass
    class SeededTPE(TPESamplerConfig):
        seed: Optional[int] = 0  # noqa: UP045

    store.store(group="hydra/sweeper", name="optuna", node=PolyexpOptuna, provider="polyexp")
    store.store(group="hydra/sweeper/sampler", name="tpe", node=SeededTPE, provider="polyexp")


@dataclass(frozen=True)
class Plan:
    """A checked experiment: the settings, each plugin with its config applied, the window's epochs."""

    config: dict[str, Any]  # the resolved config, plain Python (logged as params, written as config.yaml)
    settings: Settings
    data: BoundPlugin
    model: BoundPlugin
    optimizer: BoundPlugin
    weighting: BoundPlugin
    window: list[int]  # the members' epochs, member 1 (the latest) first
    plugins: dict[str, BoundPlugin]  # by group

    def load_data(self) -> Dataset:
        """The data plugin's dataset, checked: every split non-empty, every class in training."""
        return check_dataset(self.data(), self.data.label)


def plan(cfg: DictConfig | dict[str, Any]) -> Plan:
    """Check every value of a composed config; raise ConfigError naming the first bad field."""
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(config, dict)
    settings = build(Settings, {p.name: config[p.name] for p in SETTINGS if p.name in config})
    last_seed = settings.seed + settings.seeds - 1
    if last_seed > 2**32 - 1:
        raise ConfigError(f"seed={settings.seed} with seeds={settings.seeds} reaches seed {last_seed}, above 2**32-1")
    if settings.swa_start is not None and settings.swa_start > settings.epochs:
        raise ConfigError.field("swa_start", settings.swa_start, f"it must be <= epochs ({settings.epochs})")
    plugins = {registry.group: registry.bind(config[registry.group]) for registry in GROUPS}
    window = check_window(plugins["window"](settings.epochs), settings.epochs, plugins["window"].label)
    return Plan(
        config=config,
        settings=settings,
        data=plugins["data"],
        model=plugins["model"],
        optimizer=plugins["optimizer"],
        weighting=plugins["averaging"],
        window=window,
        plugins=plugins,
    )
