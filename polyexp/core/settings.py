"""polyexp's typed config, and the :class:`Plan` a composed config is turned into.

Hydra composes ``conf/config.yaml``: the top-level :class:`Settings` and one option of each plugin
group (``data``, ``model``, ``optimizer``, ``schedule``, ``window``, ``averaging``, ``trajectory``). Every
field is declared once, with its type, bounds and what it :class:`~polyexp.core.registry.Affects` in its hint: a
plugin's fields
in its signature, the settings in the dataclasses below. From these declarations come the configs
Hydra stores (so ``averaging.alpha=abc`` fails at composition), the checks ``plan_from`` runs (so
``epochs=0`` fails before any work), the typed objects the code reads, and the identity of a result
(``polyexp.core.identity``)::

    cfg = compose(["averaging=exp", "averaging.alpha=4"])   # as `python -m polyexp ...` would
    plan = plan_from(cfg)
    plan.settings.epochs            # 500
    plan.averaging(3)               # [exp(-1/4), exp(-2/4), exp(-3/4)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from polyexp.core.averaging import AVERAGINGS
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
    check_known,
    config_class,
    did_you_mean,
    fields_of,
)
from polyexp.core.schedules import SCHEDULES, batches_per_epoch, factors
from polyexp.core.trajectory_sources import TRAJECTORIES, CheckpointFiles, check_fit
from polyexp.core.window import WINDOWS, StepWindow, check_window

# One config group per registry; the group's name is the registry's.
GROUPS: tuple[Registry, ...] = (DATASETS, MODELS, OPTIMIZERS, SCHEDULES, WINDOWS, AVERAGINGS, TRAJECTORIES)

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
class ScoringSettings:
    # Rows per graph call when scoring, recomputing BatchNorm statistics and drawing the learning curves
    # of checkpoint files: memory grows with it, not with the split.
    batch_size: Annotated[int, Ge(1)] = 1024


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
    scoring: Annotated[ScoringSettings, Affects.SCORING] = field(default_factory=ScoringSettings)
    # TensorFlow threads per job; None: all cores, divided among a parallel launcher's workers.
    threads: Annotated[Optional[int], Ge(1), Nothing] = None  # noqa: UP045
    verbose: Annotated[bool, Nothing] = False  # also show TensorFlow's start-up lines
    tracking: Annotated[TrackingSettings, Nothing] = field(default_factory=TrackingSettings)
    cache: Annotated[CacheSettings, Nothing] = field(default_factory=CacheSettings)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))


SETTINGS: tuple[Param, ...] = fields_of(Settings)


def check_key(key: str, *, group_fields: bool = True) -> None:
    """Raise ConfigError, naming the close match, when ``key`` names nothing polyexp has.

    ``key`` is a config key as an override writes it: a setting (``epochs``), a nested one
    (``tracking.uri``), a group (``averaging``) or, with ``group_fields``, a field that one of the
    group's options has (``averaging.alpha``; whether the chosen option has it is the plugin's check).
    Hydra's own keys (``hydra.*``) are Hydra's::

        check_key("epoch")  # ConfigError: epoch is not a polyexp setting (did you mean epochs?); ...
    """
    top, _, rest = key.partition(".")
    if top == "hydra":
        return
    settings = {p.name: p for p in SETTINGS}
    groups = {registry.group: registry for registry in GROUPS}
    if top not in settings and top not in groups:
        raise ConfigError(f"{top} is not a polyexp setting{did_you_mean(top, [*settings, *groups])}; settings: "
                          f"{', '.join(settings)}; groups: {', '.join(groups)}")
    field = rest.partition(".")[0]
    if not field:
        return
    if top in settings:
        setting = settings[top]
        if not setting.nested:
            raise ConfigError(f"{key} is not a setting: {top} has no fields")
        check_known(fields_of(setting.type), [field], f"{top}.")
    elif group_fields:
        fields = {p.name for plugin in groups[top] for p in plugin.params} | {"name"}
        if field not in fields:
            raise ConfigError(f"{top}.{field} is not a field of any {top} option"
                              f"{did_you_mean(field, fields - {'name'}, top + '.')}; "
                              f"`python -m polyexp.plugins {top}` lists each option's fields")


def schema_class() -> type:
    """The schema Hydra composes: a field per plugin group, then the settings."""
    groups = [Param(registry.group, Any, "???") for registry in GROUPS]
    return config_class("ExperimentConfig", (*groups, *SETTINGS))  # the name OmegaConf's errors show


def _chosen(registry: Registry) -> property:
    """A Plan's view of one group's chosen option (kept once, in ``Plan.plugins``)."""
    return property(lambda plan: plan.plugins[registry.group], doc=f"the chosen {registry.group} option")


@dataclass(frozen=True)
class Plan:
    """A checked plan: the settings, each plugin with its config applied, the window's epochs."""

    config: dict[str, Any]  # the resolved config, plain Python (logged as params, written as config.yaml)
    settings: Settings
    plugins: dict[str, BoundPlugin]  # each group's chosen option, with its config applied
    window: list[int] | StepWindow  # the members' epochs (or steps), member 1 (the latest) first
    checkpoint_files: CheckpointFiles | None = None  # trajectory=files: the checkpoints scored instead of training

    data = _chosen(DATASETS)
    model = _chosen(MODELS)
    optimizer = _chosen(OPTIMIZERS)
    averaging = _chosen(AVERAGINGS)  # the weights of the average of the n latest

    def load_data(self) -> Dataset:
        """The data plugin's dataset, checked: every split non-empty, every class in training; then
        :meth:`check_steps` (or, for checkpoint files, that they fit the data and the model). A plugin that
        asks for ``own_checkpoints`` learns whether the rows score the user's own checkpoint files
        (trajectory=files) rather than a model trained here."""
        data = check_dataset(self.data(own_checkpoints=self.checkpoint_files is not None), self.data.label)
        if self.checkpoint_files is not None:
            check_fit(self.checkpoint_files, self.model, data)
        else:
            self.check_steps(len(data.x_train))
        return data

    def check_steps(self, training_rows: int) -> None:
        """What depends on the number of optimizer steps: the schedule's rates (never negative) and a
        window by steps (it fits in training)."""
        per_epoch = batches_per_epoch(training_rows, self.settings.batch_size)
        factors(self.plugins["schedule"], self.settings.epochs, per_epoch)
        if isinstance(self.window, StepWindow):
            self.window.members(self.settings.epochs * per_epoch)


def plan_from(cfg: DictConfig | dict[str, Any]) -> Plan:
    """Check every value of a composed config; raise ConfigError naming the first bad field.

    A config a sweeper composes still holds Hydra's own node (``hydra``); it is left out, unresolved.
    """
    if isinstance(cfg, DictConfig):
        if "hydra" in cfg:
            cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
            with open_dict(cfg):
                cfg.pop("hydra")
        config = OmegaConf.to_container(cfg, resolve=True)
    else:
        config = dict(cfg)
    assert isinstance(config, dict)
    for key in config:  # a key Hydra added (+epoch=10) that nothing reads
        check_key(key, group_fields=False)
    settings = build(Settings, {p.name: config[p.name] for p in SETTINGS if p.name in config})
    last_seed = settings.seed + settings.seeds - 1
    if last_seed > 2**32 - 1:
        raise ConfigError(f"seed={settings.seed} with seeds={settings.seeds} reaches seed {last_seed}, above 2**32-1")
    if settings.swa_start is not None and settings.swa_start > settings.epochs:
        raise ConfigError.field("swa_start", settings.swa_start, f"it must be <= epochs ({settings.epochs})")
    plugins = {registry.group: registry.bind(config[registry.group]) for registry in GROUPS}
    checkpoint_files = _checkpoint_files(plugins["trajectory"], settings)
    if checkpoint_files:
        window = checkpoint_files.epochs
    else:
        window = plugins["window"](settings.epochs)
        if not isinstance(window, StepWindow):
            window = check_window(window, settings.epochs, plugins["window"].label)
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
