"""polyexp's Hydra sweeper: Hydra's basic sweeper, aware of each plugin's fields and checked whole first.

It is Hydra's ``BasicSweeper`` (the same parsing, batches, ``multirun.yaml`` and launch loop) with
two of its hooks changed, on polyexp's config only:

- **the expansion** (``split_arguments``): a plugin's field applies to the options that have it.
  ``averaging=equal,linear,exp averaging.alpha=1,2,4`` runs ``equal`` and ``linear`` once each and
  ``exp`` at every alpha: 5 jobs, one training. A field that none of the chosen options has is
  refused, in one line that names the options and their fields. Repeated values stay repeated jobs,
  as in Hydra (``seed=1,1`` is two jobs; the second finds the first's FINISHED run and skips).
- **the check** (``validate_batch_is_legal``, done for every job before the first batch): each job's
  config composed, its values checked, its data loaded. A sweep with a bad job runs nothing and leaves
  no run behind; only then is the sweep's parent run opened, and it is closed when the sweep ends,
  however it ends (``polyexp.sweep.parent.sweep_parent``).

On any other app's config (no polyexp schema) it is exactly Hydra's basic sweeper, so
``hydra/sweeper=polyexp`` passes Hydra's own launcher suites (``tests/test_hydra_suites.py``).
It is the default of ``python -m polyexp``; ``hydra/sweeper=basic`` or any other sweeper (Optuna)
still works, without these changes.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override
from hydra.errors import CompactHydraException, HydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext
from omegaconf import DictConfig

from polyexp.core.errors import ConfigError, PolyexpError
from polyexp.run.command_line import Argument, CommandLine, parse_strictly, refusal
from polyexp.run.stop import process_stop

if TYPE_CHECKING:
    from polyexp.core.settings import Plan

log = logging.getLogger(__name__)


class PluginAwareSweeper(BasicSweeper):
    """See the module docstring. Hydra finds it as ``hydra_plugins.polyexp_sweeper.PolyexpSweeper``."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        # Not BasicSweeper.__init__: it calls super(BasicSweeper, self), and Hydra's plugin scan runs
        # its module again, so the name BasicSweeper then means a new class this one does not derive from.
        Sweeper.__init__(self)
        self.max_batch_size = max_batch_size if max_batch_size and max_batch_size > 0 else None
        self.params = params or {}
        self.overrides: list[list[list[str]]] | None = None
        self.batch_index = 0
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None
        if not is_polyexp_config(self.config):
            return super().sweep(arguments)
        from polyexp.sweep.parent import SweepParent, sweep_key

        command = parse_strictly([*self._parse_config(), *arguments], self.hydra_context.config_loader)
        try:
            jobs = expand(command, self.config.hydra.runtime.choices)
            started = time.perf_counter()
            plans = self.check(jobs)
            log.debug("checked %d jobs in %.2f s", len(jobs), time.perf_counter() - started)
            key = sweep_key(self.config.tracking.experiment, plans)
            parent = SweepParent.open(self.config, command, key, num_jobs=len(jobs), stop=process_stop())
        except PolyexpError as exc:
            raise refusal(str(exc)) from exc
        try:
            with parent:
                return super().sweep(arguments)
        except CompactHydraException as exc:  # a job's one-line error, logged with its overrides: no trailer
            raise refusal(str(exc)) from exc

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        """Hydra's hook for the jobs, in batches: the plugin-aware product on polyexp's config."""
        assert self.config is not None
        if not is_polyexp_config(self.config):
            return BasicSweeper.split_arguments(overrides, max_batch_size)
        jobs = expand(CommandLine(tuple(Argument(o.input_line or "", o) for o in overrides)),
                      self.config.hydra.runtime.choices)
        return list(self.split_overrides_to_chunks(jobs, max_batch_size))

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not is_polyexp_config(self.config):
            super().validate_batch_is_legal(batch)
        # polyexp's jobs were all checked, more thoroughly, before the first batch

    def check(self, jobs: Sequence[Sequence[str]]) -> list[Plan]:
        """Every job's plan, its config composed and checked and each distinct data config loaded;
        one line on the first problem."""
        from polyexp.core.settings import plan_from

        assert self.config is not None and self.hydra_context is not None
        training_rows: dict[str, int] = {}  # by data config
        plans = []
        for number, job in enumerate(jobs, start=1):
            where = f"job {number} ({' '.join(job) or 'defaults'})"
            try:
                plan = plan_from(self.hydra_context.config_loader.load_sweep_config(self.config, list(job)))
                data_key = json.dumps(plan.config["data"], sort_keys=True)
                if data_key in training_rows:
                    plan.check_steps(training_rows[data_key])
                else:
                    if plan.checkpoint_files is not None:  # checking that they fit loads a model: TensorFlow
                        from polyexp.run.quiet import import_tensorflow

                        import_tensorflow()
                    training_rows[data_key] = len(plan.load_data().x_train)
                plans.append(plan)
            except PolyexpError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
            except HydraException as exc:
                cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
                raise CompactHydraException(f"{where}: {exc}{cause}") from exc
        return plans


def is_polyexp_config(config: DictConfig | None) -> bool:
    """Whether ``config`` is composed on polyexp's schema (any other app gets Hydra's basic sweep)."""
    from polyexp.core.settings import GROUPS, SETTINGS

    names = [registry.group for registry in GROUPS] + [p.name for p in SETTINGS]
    return config is not None and all(name in config for name in names)


def plugin_field(argument: Argument, groups: Iterable[str]) -> tuple[str, str] | None:
    """``(group, field)`` when ``argument`` sets a field of one of ``groups``' options (``averaging.alpha=``)."""
    group, dot, name = argument.override.get_key_element().partition(".")
    if dot and group in groups and argument.changes and "." not in name:
        return group, name
    return None


def expand(command: CommandLine, choices: Mapping[str, Any]) -> list[list[str]]:
    """The jobs of a sweep: the product of the swept values, each plugin field kept for the options that have it.

    ``choices`` are the groups' options when the overrides do not choose one (the defaults).
    """
    from polyexp.core.settings import GROUPS

    registries = {registry.group: registry for registry in GROUPS}
    axes: dict[str, list[str]] = {}  # key -> its "key=value" alternatives
    fields: dict[str, dict[str, tuple[str, list[str]]]] = {}  # group -> key -> (field, alternatives)
    for argument in command:
        key = argument.override.get_key_element()
        if not argument.discrete:
            raise ConfigError(f"{key}: {argument.override.value_type.name} sweeps need an optimising sweeper "
                              "(hydra/sweeper=optuna); polyexp's sweeper takes lists, range() and glob()")
        alternatives = [f"{key}={value}" for value in argument.values]
        field = plugin_field(argument, registries)
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
            jobs.append([*combo, *itertools.chain.from_iterable(extra)])
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
