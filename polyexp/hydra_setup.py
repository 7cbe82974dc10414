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
from omegaconf import DictConfig, OmegaConf

from polyexp.core.registry import import_plugin_modules
from polyexp.core.settings import GROUPS, check_key, schema_class
from polyexp.run.command_line import CommandLine


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
            store.store(group=registry.group, name=plugin.name, node=option_node(plugin.config_class()))


def option_node(config_class: type) -> DictConfig:
    """A group option's node, open to fields it does not have: ``averaging.alpha=4`` composes on
    ``averaging=equal``. The option refuses such a field itself, in one line, when it binds its config
    (``Plugin.bind``); a sweep over the group keeps the field for the options that have it. A closed node
    would make Hydra refuse it first, in a multirun before any sweeper could apply it to ``exp`` alone.
    """
    node = OmegaConf.structured(config_class)
    OmegaConf.set_struct(node, False)
    return node


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


def check_command_line(command: CommandLine) -> None:
    """Refuse, in one line, an override polyexp can tell is wrong before Hydra composes anything: a key it
    does not know (``+`` or not) and an option a group does not have, each with the close match.

    Hydra would refuse ``epoch=10`` in five lines that suggest ``+epoch=10``, and accept that: a job that
    logs ``epoch=10`` and trains for ``epochs``; ``model=cnnn`` gets a dozen lines with Hydra's search path.
    A plugin's field is checked against the chosen option once the config is composed (a single run) or
    against the options it is swept with (polyexp's sweeper), so only its name is checked here. Hydra's own
    keys (``hydra.*``, ``hydra/launcher=...``) are left to Hydra.
    """
    groups = {registry.group: registry for registry in GROUPS}
    for argument in command:
        if argument.key.startswith("hydra/"):  # Hydra's own groups; check_key leaves hydra.* to Hydra too
            continue
        check_key(argument.key, group_fields=not command.multirun)
        registry = groups.get(argument.key)
        if registry is not None and argument.written_out and argument.changes and not command.adds_configs:
            for option in argument.values:
                registry.check_option(option)
