"""The command line, parsed once: each override's key, its values and whether it is swept.

This is the one module that runs Hydra's override parser. The command (``polyexp.app``) parses
``sys.argv`` to check its keys before Hydra composes anything; polyexp's sweeper parses the sweep's
arguments (with Hydra's config loader, for ``glob()``) and hands the result to the sweep's parent;
a job's name reads its overrides' keys from here::

    command = parse(["averaging=exp", "averaging.alpha=1,2", "seeds=3", "-m"])
    command.multirun                  # True
    command.swept_keys                # ("averaging.alpha",)
    command["averaging.alpha"].values  # ("1", "2")
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.errors import CompactHydraException, HydraException

MULTIRUN_FLAGS = ("-m", "--multirun")


@dataclass(frozen=True)
class Argument:
    """One override as given: ``averaging.alpha=1,2`` is the key ``averaging.alpha``, values ``1`` and ``2``."""

    text: str
    override: Override

    @property
    def key(self) -> str:
        """The config key or group, without Hydra's ``+``/``++``/``~``: ``averaging.alpha``, ``hydra/launcher``."""
        return self.override.get_key_element().lstrip("+~")

    @property
    def value(self) -> str:
        """The value as written: ``1,2`` for a sweep."""
        return self.text.partition("=")[2]

    @property
    def swept(self) -> bool:
        return self.override.is_sweep_override()

    @property
    def discrete(self) -> bool:
        """A list, ``range()`` or ``glob()``: values a basic sweep can enumerate (not ``interval()``)."""
        return not self.swept or self.override.is_discrete_sweep()

    @property
    def written_out(self) -> bool:
        """Whether its values are written out (a value, a list, ``range()``): not ``glob()``, whose values are
        a group's options as Hydra's config loader finds them, nor ``interval()``."""
        return self.discrete and not (self.swept and self.override.value_type == ValueType.GLOB_CHOICE_SWEEP)

    @property
    def values(self) -> tuple[str, ...]:
        """Every value it takes: one for a plain override, each of a discrete sweep's."""
        if not self.swept:
            return (self.override.get_value_element_as_str(),)
        return tuple(self.override.sweep_string_iterator())

    @property
    def changes(self) -> bool:
        """Whether it sets an existing key (``key=value``), rather than adding (``+``) or deleting (``~``) one."""
        return self.override.type == OverrideType.CHANGE


@dataclass(frozen=True)
class CommandLine:
    """The overrides of a command line (those Hydra's parser reads), in order, and whether it is a multirun."""

    arguments: tuple[Argument, ...]
    flags: tuple[str, ...] = ()  # the other words: -m, --cfg job, --config-dir DIR

    @property
    def multirun(self) -> bool:
        return bool(set(MULTIRUN_FLAGS) & set(self.flags))

    @property
    def adds_configs(self) -> bool:
        """Whether configs beyond polyexp's may be composed (``--config-dir``, ``hydra.searchpath``)."""
        return bool({"--config-dir", "-cd", "--config-path", "-cp"} & set(self.flags)) or any(
            argument.key.startswith("hydra.searchpath") for argument in self.arguments)

    def __iter__(self) -> Iterator[Argument]:
        return iter(self.arguments)

    def __getitem__(self, key: str) -> Argument:
        for argument in reversed(self.arguments):  # as Hydra applies them: the last one wins
            if argument.key == key:
                return argument
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return any(argument.key == key for argument in self.arguments)

    @property
    def texts(self) -> list[str]:
        return [argument.text for argument in self.arguments]

    @property
    def overrides(self) -> list[Override]:
        return [argument.override for argument in self.arguments]

    @property
    def swept_keys(self) -> tuple[str, ...]:
        """What names a sweep's jobs apart: the keys it sweeps, and a field of a swept group, which applies
        to the options that have it (``averaging.alpha=4`` beside ``averaging=equal,exp``)."""
        swept = {argument.key for argument in self.arguments if argument.swept}
        return tuple(argument.key for argument in self.arguments
                     if argument.key in swept or argument.key.partition(".")[0] in swept)


def parse(arguments: Sequence[str], config_loader: Any = None) -> CommandLine:
    """The overrides among ``arguments`` (a command line's words; flags such as ``-m`` and ``--cfg job``
    are skipped). An override Hydra's parser refuses is left out: Hydra reports it when it reads it.

    ``config_loader`` is Hydra's, which ``glob()`` sweeps need to list a group's options.
    """
    parser = OverridesParser.create(config_loader=config_loader)
    parsed, flags = [], []
    for text in arguments:
        if text.startswith("-") or "=" not in text:
            flags.append(text)
            continue
        try:
            parsed.append(Argument(text, parser.parse_override(text)))
        except HydraException:
            continue
    return CommandLine(tuple(parsed), tuple(flags))


def parse_strictly(arguments: Sequence[str], config_loader: Any = None) -> CommandLine:
    """Like :func:`parse`, for overrides that must all be readable (a sweep's, Hydra's own list):
    Hydra's error for the first that is not."""
    parser = OverridesParser.create(config_loader=config_loader)
    overrides = parser.parse_overrides(list(arguments))
    return CommandLine(tuple(Argument(text, o) for text, o in zip(arguments, overrides, strict=True)))


def refusal(message: str) -> BaseException:
    """What ends the command on an error polyexp states in one line: ``SystemExit(message)``, which Python
    prints alone (exit status 1). Hydra would show an exception as ``Error executing job with overrides``,
    the message, and its ``HYDRA_FULL_ERROR`` trailer; with ``HYDRA_FULL_ERROR=1`` it is Hydra's exception
    all the same, to show the traceback::

        raise refusal(str(exc)) from exc
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return CompactHydraException(message)
    return SystemExit(message)
