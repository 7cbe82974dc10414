"""The experiment's typed config, and the plan a composed config is turned into.

Hydra composes ``conf/config.yaml``: the top-level :class:`Settings` and one option of each plugin
group (``data``, ``model``, ``optimizer``, ``window``, ``averaging``, ``trajectory``). Every field is
declared once, with its type, bounds and what it :class:`~polyexp.core.registry.Affects` in its hint: a plugin's fields
in its signature, the settings in the dataclasses below. From these declarations come the configs
Hydra stores (so ``averaging.alpha=abc`` fails at composition), the checks ``plan`` runs (so
``epochs=0`` fails before any work), the typed objects the code reads, and the identity of a result
(``polyexp.core.identity``)::

    cfg = compose(["averaging=exp", "averaging.alpha=4"])   # as `python -m polyexp ...` would
    experiment = plan(cfg)
    experiment.settings.epochs      # 500
    experiment.weighting(3)         # [exp(-1/4), exp(-2/4), exp(-3/4)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

from omegaconf import DictConfig, OmegaConf

from polyexp.core.averaging import WEIGHTINGS
from polyexp.core.data import DATASETS, Dataset, check_dataset
from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.registry import (
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
)
from polyexp.core.trajectory_sources import TRAJECTORIES, CheckpointFiles
from polyexp.core.window import WINDOWS, check_window

# One config group per registry; the group's name is the registry's.
GROUPS: tuple[Registry, ...] = (DATASETS, MODELS, OPTIMIZERS, WINDOWS, WEIGHTINGS, TRAJECTORIES)

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


def _chosen(registry: Registry) -> property:
    """A Plan's view of one group's chosen option (kept once, in ``Plan.plugins``)."""
    return property(lambda plan: plan.plugins[registry.group], doc=f"the chosen {registry.group} option")


@dataclass(frozen=True)
class Plan:
    """A checked experiment: the settings, each plugin with its config applied, the window's epochs."""

    config: dict[str, Any]  # the resolved config, plain Python (logged as params, written as config.yaml)
    settings: Settings
    plugins: dict[str, BoundPlugin]  # each group's chosen option, with its config applied
    window: list[int]  # the members' epochs, member 1 (the latest) first
    checkpoint_files: CheckpointFiles | None = None  # trajectory=files: the checkpoints scored instead of training

    data = _chosen(DATASETS)
    model = _chosen(MODELS)
    optimizer = _chosen(OPTIMIZERS)
    weighting = _chosen(WEIGHTINGS)  # the ``averaging`` group: the weights of the average of the n latest

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
    checkpoint_files = _checkpoint_files(plugins["trajectory"], settings)
    window = checkpoint_files.epochs if checkpoint_files else check_window(
        plugins["window"](settings.epochs), settings.epochs, plugins["window"].label)
    return Plan(config=config, settings=settings, plugins=plugins, window=window, checkpoint_files=checkpoint_files)


def _checkpoint_files(source: BoundPlugin, settings: Settings) -> CheckpointFiles | None:
    """The trajectory plugin's checkpoint files (None: train), refusing settings that only training has."""
    found = source()
    if found is None:
        return None
    if not isinstance(found, CheckpointFiles):
        raise PluginError(f"{source.label} returned {type(found).__name__}; it must return CheckpointFiles or None")
    for name, value, default in (("seeds", settings.seeds, 1), ("ema_decays", settings.ema_decays, None),
                                 ("swa_start", settings.swa_start, None)):
        if value != default:
            raise ConfigError.field(name, value, f"trajectory={source.name} scores saved checkpoints, with no "
                                                 f"training here: leave {name} unset (the runs are the glob's folders)")
    return found
