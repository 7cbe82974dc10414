"""polyexp's Hydra sweeper: Hydra's basic sweep, aware of each plugin's fields and checked whole first.

It runs the cartesian product of the swept values, as Hydra's basic sweeper does, with two changes:

- **A plugin's field applies to the options that have it.** ``averaging=equal,linear,exp
  averaging.alpha=1,2,4`` runs ``equal`` and ``linear`` once each and ``exp`` at every alpha: 5 jobs,
  one training. A field that none of the chosen options has is refused, in one line that names the
  options and their fields.
- **Every job is checked before anything runs:** its config composed, its values checked, its data
  loaded. A sweep with a bad job runs nothing and leaves no run behind; only then is the sweep's
  parent run opened (``polyexp.sweep.parent``).

It is the default (``hydra/sweeper: polyexp`` in ``conf/config.yaml``); ``hydra/sweeper=basic`` or
any other sweeper (Optuna) still works, without these two changes.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException, HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from polyexp.core.errors import ConfigError, PolyexpError

log = logging.getLogger(__name__)


class PluginAwareSweeper(Sweeper):
    """See the module docstring. Hydra finds it as ``hydra_plugins.polyexp_sweeper.PolyexpSweeper``."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = params or {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from polyexp.sweep.parent import open_sweep, swept_keys_of

        given = [*(f"{key}={value}" for key, value in self.params.items()), *arguments]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        try:
            jobs = expand(parser.parse_overrides(given), self.config.hydra.runtime.choices)
            started = time.perf_counter()
            self.check(jobs)
            log.debug("checked %d jobs in %.2f s", len(jobs), time.perf_counter() - started)
            open_sweep(self.config, arguments, num_jobs=len(jobs), swept_keys=swept_keys_of(given))
        except PolyexpError as exc:
            raise CompactHydraException(str(exc)) from exc

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else max(1, len(jobs))
        returns = []
        for first in range(0, len(jobs), size):
            results = self.launcher.launch(jobs[first : first + size], initial_job_idx=first)
            for result in results:
                _ = result.return_value  # raises a failed job's exception, as Hydra's sweepers do
            returns.append(results)
        return returns

    def check(self, jobs: Sequence[Sequence[str]]) -> None:
        """Compose and check every job, and load each distinct data config; one line on the first problem."""
        from polyexp.core.settings import plan

        training_rows: dict[str, int] = {}  # by data config
        for number, job in enumerate(jobs, start=1):
            where = f"job {number} ({' '.join(job) or 'defaults'})"
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
                with open_dict(cfg):
                    del cfg["hydra"]
                experiment = plan(cfg)
                data_key = json.dumps(experiment.config["data"], sort_keys=True)
                if data_key in training_rows:
                    experiment.check_steps(training_rows[data_key])
                else:
                    training_rows[data_key] = len(experiment.load_data().x_train)
            except PolyexpError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
            except HydraException as exc:
                cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
                raise CompactHydraException(f"{where}: {exc}{cause}") from exc


def sweep_fields_of_swept_groups(arguments: Sequence[str]) -> list[str]:
    """A multirun's command line with ``averaging.alpha=4`` beside ``averaging=equal,exp`` as ``choice(4)``.

    Hydra composes a multirun's fixed overrides into the group's default option before any sweeper
    runs, so ``averaging.alpha=4`` fails on ``equal`` (which has no alpha) before this sweeper could
    apply it to ``exp`` alone. Written as a one-value sweep it reaches the sweeper, which keeps it for
    the options that have it. Arguments are left as given unless polyexp's sweeper runs a multirun.
    """
    from polyexp.core.settings import GROUPS

    given = list(arguments)
    if not {"-m", "--multirun"} & set(given) or any(
            a.startswith("hydra/sweeper=") and a != "hydra/sweeper=polyexp" for a in given):
        return given
    parser = OverridesParser.create()

    def parsed(argument: str) -> Override | None:
        if argument.startswith("-") or "=" not in argument:
            return None
        try:
            return parser.parse_override(argument)
        except HydraException:
            return None  # Hydra reports it

    groups = {registry.group for registry in GROUPS}
    overrides = [parsed(argument) for argument in given]
    swept = {o.get_key_element() for o in overrides
             if o is not None and o.is_sweep_override() and o.get_key_element() in groups}
    for i, override in enumerate(overrides):
        field = None if override is None or override.is_sweep_override() else plugin_field(override, swept)
        if field is not None:
            key, _, value = given[i].partition("=")
            given[i] = f"{key}=choice({value})"
    return given


def plugin_field(override: Override, groups: Iterable[str]) -> tuple[str, str] | None:
    """``(group, field)`` when ``override`` sets a field of one of ``groups``' options (``averaging.alpha=``)."""
    group, dot, name = override.get_key_element().partition(".")
    if dot and group in groups and override.type == OverrideType.CHANGE and "." not in name:
        return group, name
    return None


def expand(overrides: Sequence[Override], choices: Mapping[str, Any]) -> list[list[str]]:
    """The jobs of a sweep: the product of the swept values, each plugin field kept for the options that have it.

    ``choices`` are the groups' options when the overrides do not choose one (the defaults).
    """
    from polyexp.core.settings import GROUPS

    registries = {registry.group: registry for registry in GROUPS}
    axes: dict[str, list[str]] = {}  # key -> its "key=value" alternatives
    fields: dict[str, dict[str, tuple[str, list[str]]]] = {}  # group -> key -> (field, alternatives)
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise ConfigError(f"{key}: {override.value_type.name} sweeps need an optimising sweeper "
                              "(hydra/sweeper=optuna); polyexp's sweeper takes lists, range() and glob()")
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        alternatives = [f"{key}={value}" for value in values]
        field = plugin_field(override, registries)
        if field is not None:
            group, name = field
            fields.setdefault(group, {})[key] = (name, alternatives)
        else:
            axes[key] = alternatives

    jobs: list[list[str]] = []
    chosen_options: dict[str, set[str]] = {group: set() for group in fields}
    for combo in itertools.product(*axes.values()):
        chosen = {group: str(choices.get(group)) for group in registries}
        chosen.update({o.partition("=")[0]: o.partition("=")[2] for o in combo if o.partition("=")[0] in registries})
        applying = []
        for group, items in fields.items():
            chosen_options[group].add(chosen[group])
            names = _field_names(registries[group], chosen[group])
            applying.append([alts for field, alts in items.values() if names is None or field in names])
        for extra in itertools.product(*(itertools.product(*lists) for lists in applying)):
            job = [*combo, *itertools.chain.from_iterable(extra)]
            if job not in jobs:
                jobs.append(job)
    for group, items in fields.items():
        for key, (field, _) in items.items():
            known = [_field_names(registries[group], option) for option in sorted(chosen_options[group])]
            if all(names is not None and field not in names for names in known):
                described = "; ".join(f"{group}={option}: {registries[group][option].fields_text()}"
                                      for option in sorted(chosen_options[group]))
                raise ConfigError(f"{key} is not a field of the chosen {group} ({described})")
    return jobs


def _field_names(registry: Any, option: str) -> set[str] | None:
    """The fields of a group's option, or None when it is not a registered plugin (Hydra will say)."""
    if option not in registry:
        return None
    return {p.name for p in registry[option].params}
