"""Registries of plugins: a plugin is one function, and its signature is its typed config.

A registry's call arguments come first in the signature (a weighting takes ``n``); every parameter
after them is a config field, typed by its hint (``int``, ``float``, ``bool``, ``str``, a
``Literal`` of choices, a ``list`` of those, ``Optional``) and bounded by ``Annotated`` metadata.
A registered function is usable from the command line with no YAML to write::

    from typing import Annotated
    from polyexp.averaging import WEIGHTINGS
    from polyexp.registry import Gt

    @WEIGHTINGS.register
    def harmonic(n: int, *, power: Annotated[float, Gt(0)] = 1.0) -> list[float]:
        '''Member i (1 = the latest checkpoint) weighs 1 / i**power.'''
        return [1.0 / i**power for i in range(1, n + 1)]

    # python -m polyexp averaging=harmonic averaging.power=2

Installed packages add plugins through the entry-point group ``polyexp.<group>`` (for example
``polyexp.averaging``): an entry point names a function, registered under the entry point's name,
or a module that registers its plugins when imported. Modules that are not installed can be named
in ``$POLYEXP_PLUGINS`` (comma-separated, importable from ``$PYTHONPATH``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib
import inspect
import math
import operator
import os
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, Literal, Optional, Union

from omegaconf import MISSING

from polyexp.errors import ConfigError, PluginError, PolyexpError

_SCALARS = (bool, int, float, str)
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Bound:
    """A bound on a number (or on every item of a list): ``Annotated[float, Gt(0)]``."""

    symbol: str
    limit: float

    def allows(self, value: float) -> bool:
        return _COMPARE[self.symbol](value, self.limit)

    def __str__(self) -> str:
        limit = self.limit if isinstance(self.limit, int) else f"{self.limit:g}"
        return f"{self.symbol} {limit}"


def Gt(limit: float) -> Bound:  # noqa: N802 - reads like a type in an annotation
    return Bound(">", limit)


def Ge(limit: float) -> Bound:  # noqa: N802
    return Bound(">=", limit)


def Lt(limit: float) -> Bound:  # noqa: N802
    return Bound("<", limit)


def Le(limit: float) -> Bound:  # noqa: N802
    return Bound("<=", limit)


@dataclass(frozen=True)
class Param:
    """One config field of a plugin, read off a parameter of its function."""

    name: str
    type: Any  # the type OmegaConf enforces: a scalar, List[scalar] or Optional[...]
    default: Any = MISSING  # MISSING: the user must set it
    bounds: tuple[Bound, ...] = ()  # on the value, or on each item of a list
    choices: tuple[Any, ...] = ()  # from Literal[...]

    def check(self, value: Any, key: str) -> None:
        """Raise ConfigError naming ``key`` when ``value`` breaks a bound or a choice."""
        items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        if isinstance(value, Sequence) and not isinstance(value, str) and not value:
            raise ConfigError.field(key, value, "the list must not be empty")
        for item in items:
            if item is None:
                continue
            if self.choices and item not in self.choices:
                allowed = ", ".join(map(str, self.choices))
                raise ConfigError.field(key, value, f"choose one of {allowed}")
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError.field(key, value, "it must be a finite number")
            if not all(bound.allows(item) for bound in self.bounds):
                each = " each" if items is value else ""
                rule = " and ".join(map(str, self.bounds))
                raise ConfigError.field(key, value, f"it must{each} be {rule}")

    def describe(self) -> str:
        """A one-line summary: ``float = 2.0 (> 0)``."""
        text = _type_name(self.type)
        if self.default is not MISSING:
            text += f" = {self.default!r}"
        each = "each " if typing.get_origin(self.type) is list else ""
        rules = [each + str(b) for b in self.bounds] + ([f"one of {list(self.choices)}"] if self.choices else [])
        return f"{text} ({', '.join(rules)})" if rules else text


@dataclass(frozen=True)
class Plugin:
    """A registered function and the config fields read off its signature."""

    group: str
    name: str
    fn: Callable[..., Any]
    params: tuple[Param, ...]

    @property
    def label(self) -> str:
        return f"{self.group} plugin {self.name!r}"

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.fn) or "").split("\n\n")[0].replace("\n", " ")

    @property
    def source(self) -> str:
        """Where the plugin comes from: built in, an installed package, or a module."""
        top = self.fn.__module__.split(".")[0]
        if top == "polyexp":
            return "built in"
        dists = metadata.packages_distributions().get(top, [])
        if dists:
            return f"package {dists[0]} {metadata.version(dists[0])}"
        return f"module {self.fn.__module__}"

    def config_class(self) -> type:
        """A dataclass of the plugin's fields (and its name), for Hydra's ConfigStore."""
        fields: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=self.name))]
        for p in self.params:
            if isinstance(p.default, list):
                default = dataclasses.field(default_factory=functools.partial(list, p.default))
            else:
                default = dataclasses.field(default=p.default)
            fields.append((p.name, p.type, default))
        return dataclasses.make_dataclass(f"{self.group}_{self.name}", fields)

    def bind(self, config: Mapping[str, Any]) -> Callable[..., Any]:
        """Check ``config`` against the fields and return the plugin with its config applied."""
        known = {p.name for p in self.params} | {"name"}
        for key in config:
            if key not in known:
                fields = ", ".join(sorted(known - {"name"})) or "none"
                raise ConfigError(
                    f"{self.group}.{key} is not a field of {self.label}; its fields: {fields}"
                )
        kwargs = {}
        for p in self.params:
            value = config.get(p.name, p.default)
            if value is MISSING or value == "???":
                raise ConfigError(f"{self.group}.{p.name} is required by {self.label}: set it")
            p.check(value, f"{self.group}.{p.name}")
            kwargs[p.name] = value
        return functools.partial(self, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except PolyexpError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.label} failed: {type(exc).__name__}: {exc}") from exc


class Registry:
    """The plugins of one config group, by name.

    ``call_args`` names the arguments the framework passes to every plugin of the group; the
    parameters after them are config fields.
    """

    def __init__(self, group: str, call_args: Sequence[str] = ()) -> None:
        self.group = group
        self.call_args = tuple(call_args)
        self._plugins: dict[str, Plugin] = {}
        self._entry_points_loaded = False

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register ``fn`` (as a decorator, with or without ``name=``) and return it unchanged."""

        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            key = name or f.__name__
            existing = self._plugins.get(key)
            if existing is not None and existing.fn is not f:
                raise ValueError(f"{self.group} plugin {key!r} is already registered by {existing.source}")
            self._plugins[key] = Plugin(self.group, key, f, _read_params(self.group, key, f, self.call_args))
            return f

        return add(fn) if fn is not None else add

    def __getitem__(self, name: str) -> Plugin:
        self.load_entry_points()
        if name not in self._plugins:
            raise ConfigError(
                f"{self.group}={name!r} is not a registered {self.group} plugin; "
                f"available: {', '.join(self.names())}"
            )
        return self._plugins[name]

    def __iter__(self) -> Iterator[Plugin]:
        self.load_entry_points()
        return iter(sorted(self._plugins.values(), key=lambda p: p.name))

    def names(self) -> list[str]:
        return [p.name for p in self]

    def bind(self, config: Mapping[str, Any]) -> Callable[..., Any]:
        """The plugin ``config.name`` with the rest of ``config`` applied."""
        return self[config["name"]].bind(config)

    def load_entry_points(self) -> None:
        """Import the plugins installed packages declare under ``polyexp.<group>``, once."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in metadata.entry_points(group=f"polyexp.{self.group}"):
            try:
                loaded = entry_point.load()
            except Exception as exc:  # one broken package must not take the others down
                warnings.warn(
                    f"skipping {self.group} plugin {entry_point.name!r} ({entry_point.value}): "
                    f"{type(exc).__name__}: {exc}",
                    stacklevel=2,
                )
                continue
            is_function = callable(loaded) and not isinstance(loaded, types.ModuleType)
            if is_function and all(p.fn is not loaded for p in self._plugins.values()):
                self.register(loaded, name=entry_point.name)


def import_plugin_modules() -> None:
    """Import the modules named in ``$POLYEXP_PLUGINS``; importing them registers their plugins."""
    for name in filter(None, (n.strip() for n in os.environ.get("POLYEXP_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"POLYEXP_PLUGINS names {name!r}, which cannot be imported: {exc}") from exc


def _read_params(
    group: str, name: str, fn: Callable[..., Any], call_args: tuple[str, ...]
) -> tuple[Param, ...]:
    label = f"{group} plugin {name!r}"
    signature = inspect.signature(fn)
    hints = _parameter_hints(fn)
    parameters = list(signature.parameters.values())
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ][: len(call_args)]
    if len(positional) < len(call_args):
        raise TypeError(f"{label} must take ({', '.join(call_args)}) first, then its config fields")
    params = []
    for p in parameters[len(positional):]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{label}: *{p.name} cannot be a config field; name each field")
        default = MISSING if p.default is p.empty else p.default
        hint = hints.get(p.name)
        if hint is None and p.default is not p.empty and isinstance(default, _SCALARS):
            hint = type(default)
        if hint is None:
            raise TypeError(f"{label}: parameter {p.name!r} needs a type hint")
        try:
            params.append(_param(p.name, hint, default))
        except TypeError as exc:
            raise TypeError(f"{label}: parameter {p.name!r}: {exc}") from None
    return tuple(params)


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    # Only the parameters': a return type may be imported for type checking alone (keras.Model).
    annotations = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "return"}
    holder = types.SimpleNamespace(__annotations__=annotations)
    return typing.get_type_hints(holder, globalns=getattr(fn, "__globals__", {}), include_extras=True)


def _param(name: str, hint: Any, default: Any) -> Param:
    hint, bounds = _strip_annotated(hint)
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unions other than Optional[X] are not supported: {hint}")
        hint, optional = args[0], True
        hint, more = _strip_annotated(hint)
        bounds += more
    choices: tuple[Any, ...] = ()
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        kinds = {type(c) for c in choices}
        if len(kinds) != 1 or not kinds <= set(_SCALARS):
            raise TypeError(f"a Literal must list values of one scalar type: {hint}")
        value_type: Any = kinds.pop()
    elif origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(hint)
        if not args or (origin is tuple and (len(args) != 2 or args[1] is not Ellipsis)):
            raise TypeError(f"give the item type, as list[int]: {hint}")
        item, bounds = _strip_annotated(args[0])
        if item not in _SCALARS:
            raise TypeError(f"list items must be bool, int, float or str: {hint}")
        value_type = typing.List[item]  # noqa: UP006 - OmegaConf wants typing.List
        if isinstance(default, tuple):
            default = list(default)
    elif hint in _SCALARS:
        value_type = hint
    else:
        raise TypeError(f"type {hint} is not supported; use bool, int, float, str, Literal or list")
    if optional:
        value_type = Optional[value_type]  # noqa: UP045 - OmegaConf wants typing.Optional
    return Param(name, value_type, default, bounds, choices)


def _strip_annotated(hint: Any) -> tuple[Any, tuple[Bound, ...]]:
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, tuple(e for e in extras if isinstance(e, Bound))
    return hint, ()


def _type_name(t: Any) -> str:
    if typing.get_origin(t) is Union:
        return f"{_type_name(typing.get_args(t)[0])} | None"
    if typing.get_origin(t) is list:
        return f"list[{_type_name(typing.get_args(t)[0])}]"
    return getattr(t, "__name__", str(t))
