"""polyexp's Hydra set-up: where ``conf/`` is, the configs Hydra stores, and the sweeper it registers.

The schema itself (settings and plugin groups) is ``polyexp.core.settings``; this module hands it to
Hydra's ConfigStore, registers ``hydra/sweeper=polyexp`` and the Optuna preset, and composes a config
as ``python -m polyexp OVERRIDES`` would::

    cfg = compose(["averaging=exp", "averaging.alpha=4"])
    plan = plan_from(cfg)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from polyexp.core.registry import import_plugin_modules
from polyexp.core.settings import GROUPS, check_key, schema_class


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
    with contextlib.suppress(ImportError):  # hydra/launcher=slurm, with polyexp[submitit]
        from hydra_plugins.polyexp_sweeper.slurm import PolyexpSlurmLauncher

        Plugins.instance().register(PolyexpSlurmLauncher)
    import_plugin_modules()
    store = ConfigStore.instance()
    _store_optuna_preset(store)
    store.store(name="polyexp_schema", node=schema_class())
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


def check_override_keys(arguments: Sequence[str]) -> None:
    """Refuse an override whose key polyexp does not know, ``+`` or not, before Hydra composes anything.

    Hydra would refuse ``epoch=10`` in five lines that suggest ``+epoch=10``, and accept that: a job that
    logs ``epoch=10`` and trains for ``epochs``. A ConfigError names the close match instead. In a multirun
    polyexp's sweeper checks each plugin field against the options it is swept with, so only settings and
    groups are checked here; Hydra's own keys (``hydra.*``, ``hydra/launcher=...``) are left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    multirun = bool({"-m", "--multirun"} & set(arguments))
    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        try:
            key = parser.parse_override(argument).key_or_group
        except HydraException:
            continue  # not an override Hydra can read: Hydra says so
        if not key.startswith("hydra/"):
            check_key(key, group_fields=not multirun)
