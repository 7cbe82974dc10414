"""Typed fields and registries of plugins: a plugin is one function, and its signature is its config.

A registry's call arguments come first in the signature (an averaging takes ``n``); every parameter
after them is a config field, typed by its hint (``int``, ``float``, ``bool``, ``str``, a
``Literal`` of choices, a ``list`` of those, ``Optional``) and bounded by ``Annotated`` metadata.
A registered function is usable from the command line with no YAML to write::

    from typing import Annotated
    from polyexp.core.averaging import AVERAGINGS
    from polyexp.core.registry import Gt

    @AVERAGINGS.register
    def harmonic(n: int, *, power: Annotated[float, Gt(0)] = 1.0) -> list[float]:
        '''Member i (1 = the latest checkpoint) weighs 1 / i**power.'''
        return [1.0 / i**power for i in range(1, n + 1)]

    # python -m polyexp averaging=harmonic averaging.power=2

The top-level settings (``polyexp.core.settings.Settings``) are declared the same way, as a dataclass whose
field hints carry the bounds, so one mechanism types, checks and describes every field. A hint may
also say what a field :class:`Affects`; ``polyexp.core.identity`` reads that to decide which fields
identify a result.

A registry may offer *context* to its plugins: a parameter named after a context entry (an averaging's
``validation``, a model's ``input_shape``) is not a config field but is passed in by the framework, so
a plugin asks for what it needs by naming it (with a default, it is passed only where it is available).

Installed packages add plugins through the entry-point group ``polyexp.<group>`` (for example
``polyexp.averaging``): an entry point names a function, registered under the entry point's name,
or a module that registers its plugins when imported. Modules that are not installed can be named
in ``$POLYEXP_PLUGINS`` (comma-separated, importable from ``$PYTHONPATH``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import enum
import functools
import importlib
import importlib.util
import inspect
import logging
import math
import operator
import os
import traceback
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, Literal, Optional, Union

from polyexp.core.errors import ConfigError, PluginError, PolyexpError, first_line

log = logging.getLogger(__name__)

_SCALARS = (bool, int, float, str)
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class _Missing:
    """A field without a default: the user must set it (``???`` in Hydra)."""

    def __repr__(self) -> str:
        return "???"


MISSING: Any = _Missing()


class Affects(enum.Enum):
    """What a config field changes. Fields affect training unless their hint says otherwise."""

    TRAINING = "training"  # the trained trajectory, and so every number computed from it
    SCORING = "scoring"  # the numbers computed from a trajectory, not the trajectory
    NOTHING = "nothing"  # where and how a job runs, never a number


class File:
    """``Annotated[str, File()]``: the field names a file whose content decides the numbers (identity hashes it);
    ``File(glob=True)``: a glob pattern whose matching files' names and content decide them."""

    def __init__(self, *, glob: bool = False) -> None:
        self.glob = glob

    def __repr__(self) -> str:
        return "File(glob=True)" if self.glob else "File()"


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
    """One config field: a plugin parameter or a settings field, read off its type hint."""

    name: str
    type: Any  # the type OmegaConf enforces: a scalar, List[scalar], Optional[...] or a settings dataclass
    default: Any = MISSING
    bounds: tuple[Bound, ...] = ()  # on the value, or on each item of a list
    choices: tuple[Any, ...] = ()  # from Literal[...]
    affects: Affects | None = None  # None: what the group or settings class decides
    is_file: bool = False  # the value names a file whose content counts (see File)
    is_glob: bool = False  # the value is a glob pattern of such files (File(glob=True))

    @property
    def nested(self) -> bool:
        """A field that is a settings dataclass of its own (``tracking``, ``cache``)."""
        return dataclasses.is_dataclass(self.type)

    def check(self, value: Any, key: str) -> None:
        """Raise ConfigError naming ``key`` when ``value`` breaks a bound or a choice."""
        if self.nested:
            check_fields(fields_of(self.type), value, f"{key}.")
            return
        is_list = isinstance(value, Sequence) and not isinstance(value, str)
        if is_list and not value:
            raise ConfigError.field(key, value, "the list must not be empty")
        for item in value if is_list else [value]:
            if item is None:
                continue
            if self.choices and item not in self.choices:
                allowed = ", ".join(map(str, self.choices))
                raise ConfigError.field(key, value, f"choose one of {allowed}")
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError.field(key, value, "it must be a finite number")
            if not all(bound.allows(item) for bound in self.bounds):
                each = " each" if is_list else ""
                rule = " and ".join(map(str, self.bounds))
                raise ConfigError.field(key, value, f"it must{each} be {rule}")

    def describe(self) -> str:
        """A one-line summary: ``float = 2.0 (> 0)``."""
        text = _type_name(self.type)
        if self.default is not MISSING:
            text += f" = {self.default!r}"
        each = "each " if typing.get_origin(_without_none(self.type)) is list else ""
        rules = [each + str(b) for b in self.bounds] + ([f"one of {list(self.choices)}"] if self.choices else [])
        return f"{text} ({', '.join(rules)})" if rules else text


def fields_of(cls: type) -> tuple[Param, ...]:
    """The fields of a settings dataclass, typed, bounded and marked by their ``Annotated`` hints."""
    hints = typing.get_type_hints(cls, include_extras=True)
    params = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        hint, extras = _strip_annotated(hints[f.name])
        if dataclasses.is_dataclass(hint):
            params.append(Param(f.name, hint, default, affects=_affects(extras)))
        else:
            params.append(_param(f.name, hints[f.name], default))
    return tuple(params)


def check_fields(params: Sequence[Param], values: Mapping[str, Any], prefix: str = "") -> None:
    """Check every value against its field; a ConfigError names the first bad one (``prefix.name``)."""
    check_known(params, values, prefix)
    for p in params:
        if p.name in values:
            p.check(values[p.name], f"{prefix}{p.name}")


def check_known(params: Sequence[Param], keys: Iterable[str], prefix: str = "") -> None:
    """Raise ConfigError naming the first of ``keys`` that is not one of ``params`` (and its close match)."""
    known = {p.name for p in params}
    for key in keys:
        if key not in known:
            raise ConfigError(f"{prefix}{key} is not a setting{did_you_mean(key, known, prefix)}; "
                              f"settings: {', '.join(sorted(known))}")


def did_you_mean(key: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean epochs?)`` when ``key`` is close to one of ``known`` (a typo), else ``""``::

        did_you_mean("epoch", ["epochs", "seed"])  # " (did you mean epochs?)"
    """
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of the settings dataclass ``cls`` from checked ``values`` (missing ones: defaults)."""
    check_fields(fields_of(cls), values, prefix)
    return _instance(cls, values)


def _instance(cls: type, values: Mapping[str, Any]) -> Any:
    return cls(**{p.name: _instance(p.type, values[p.name]) if p.nested else _plain(values[p.name])
                  for p in fields_of(cls) if p.name in values})


def config_class(name: str, params: Sequence[Param]) -> type:
    """A dataclass of ``params`` that Hydra's ConfigStore and OmegaConf accept (bounds stripped)."""
    fields: list[tuple[str, Any, Any]] = []
    for p in params:
        if p.nested:
            nested = config_class(p.type.__name__, fields_of(p.type))
            fields.append((p.name, nested, dataclasses.field(default_factory=nested)))
        elif isinstance(p.default, list):
            fields.append((p.name, p.type, dataclasses.field(default_factory=functools.partial(list, p.default))))
        else:
            default = "???" if p.default is MISSING else p.default
            fields.append((p.name, p.type, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name, fields)


@dataclass(frozen=True)
class Plugin:
    """A registered function, the config fields read off its signature and the context it asks for."""

    group: str
    name: str
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    context: tuple[str, ...] = ()  # names of the registry's context entries the function takes
    optional: tuple[str, ...] = ()  # those of them that have a default

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
        return config_class(f"{self.group}_{self.name}", (Param("name", str, self.name), *self.params))

    def bind(self, config: Mapping[str, Any]) -> BoundPlugin:
        """Check ``config`` against the fields and return the plugin with its config applied."""
        known = {p.name for p in self.params} | {"name"}
        for key in config:
            if key not in known:
                raise ConfigError(f"{self.group}.{key} is not a field of {self.label}"
                                  f"{did_you_mean(key, known - {'name'}, self.group + '.')}; {self.fields_text()}")
        values = {}
        for p in self.params:
            value = config.get(p.name, p.default)
            if value is MISSING or value == "???":
                raise ConfigError(f"{self.group}.{p.name} is required by {self.label}: set it")
            p.check(value, f"{self.group}.{p.name}")
            values[p.name] = _plain(value)
        return BoundPlugin(self, values)

    def fields_text(self) -> str:
        """``its fields: alpha`` (or ``it has no fields``), for messages."""
        names = [p.name for p in self.params]
        return f"its fields: {', '.join(names)}" if names else "it has no fields"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except PolyexpError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.label} failed: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class BoundPlugin:
    """A plugin with its config applied: call it with the registry's call arguments (and context)."""

    plugin: Plugin
    config: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def label(self) -> str:
        return self.plugin.label

    @property
    def wants(self) -> tuple[str, ...]:
        """The context entries the plugin asks for (empty for a plain plugin)."""
        return self.plugin.context

    def __call__(self, *args: Any, **context: Any) -> Any:
        missing = [name for name in self.wants if name not in context and name not in self.plugin.optional]
        if missing:
            raise PluginError(f"{self.label} needs {', '.join(missing)}, which is not available here")
        return self.plugin(*args, **self.config, **{name: context[name] for name in self.wants if name in context})


class Registry:
    """The plugins of one config group, by name.

    ``call_args`` names the arguments the framework passes to every plugin of the group; ``context``
    names what a plugin may ask for by taking a parameter of that name; the other parameters are
    config fields. ``affects`` says what the group's fields change (see :class:`Affects`).
    """

    def __init__(
        self,
        group: str,
        call_args: Sequence[str] = (),
        *,
        context: Sequence[str] = (),
        affects: Affects = Affects.TRAINING,
    ) -> None:
        self.group = group
        self.call_args = tuple(call_args)
        self.context = tuple(context)
        self.affects = affects
        self._plugins: dict[str, Plugin] = {}
        self._entry_points_loaded = False

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register ``fn`` (as a decorator, with or without ``name=``) and return it unchanged."""

        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            key = name or f.__name__
            existing = self._plugins.get(key)
            if existing is not None and existing.fn is not f:
                raise ValueError(f"{self.group} plugin {key!r} is already registered by {existing.source}")
            params, context = _read_signature(f"{self.group} plugin {key!r}", f, self.call_args, self.context)
            defaults = inspect.signature(f).parameters
            optional = tuple(name for name in context if defaults[name].default is not inspect.Parameter.empty)
            self._plugins[key] = Plugin(self.group, key, f, params, context, optional)
            return f

        return add(fn) if fn is not None else add

    def __getitem__(self, name: str) -> Plugin:
        self.load_entry_points()
        self.check_option(name)
        return self._plugins[name]

    def check_option(self, name: str) -> None:
        """ConfigError, naming the close match and the options, when no plugin of the group is ``name``."""
        if name in self:
            return
        names = self.names()
        close = [n for n in names if name.startswith(n) or n.startswith(name)]  # exponential -> exp
        hint = f" (did you mean {close[0]}?)" if len(close) == 1 else did_you_mean(name, names)
        raise ConfigError(f"{self.group}={name}: no such {self.group} option{hint}; options: {', '.join(names)}")

    def __contains__(self, name: str) -> bool:
        self.load_entry_points()
        return name in self._plugins

    def __iter__(self) -> Iterator[Plugin]:
        self.load_entry_points()
        return iter(sorted(self._plugins.values(), key=lambda p: p.name))

    def names(self) -> list[str]:
        return [p.name for p in self]

    def bind(self, config: Mapping[str, Any]) -> BoundPlugin:
        """The plugin ``config.name`` with the rest of ``config`` applied; a field that only other options
        of the group have is refused naming them (``averaging.alpha`` on ``averaging=equal``)."""
        plugin = self[config["name"]]
        own = {p.name for p in plugin.params}
        for key in config:
            owners = [other.name for other in self if key in {p.name for p in other.params}]
            if key != "name" and key not in own and owners:
                raise ConfigError(f"{self.group}.{key} is not a field of {self.group}={plugin.name} "
                                  f"({plugin.fields_text()}); {key} is a field of "
                                  f"{', '.join(f'{self.group}={o}' for o in owners)}: choose one of them")
        return plugin.bind(config)

    def load_entry_points(self) -> None:
        """Import the plugins installed packages declare under ``polyexp.<group>``, once."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in metadata.entry_points(group=f"polyexp.{self.group}"):
            try:
                loaded = entry_point.load()
            except Exception as exc:  # one broken package must not take the others down
                module = entry_point.value.partition(":")[0].strip()
                log.warning("skipping %s plugin %r: package %s declares it as %s; %s", self.group, entry_point.name,
                            _distribution(entry_point), entry_point.value, module_failure(module, exc))
                continue
            is_function = callable(loaded) and not isinstance(loaded, types.ModuleType)
            if is_function and all(p.fn is not loaded for p in self._plugins.values()):
                self.register(loaded, name=entry_point.name)


def import_plugin_modules() -> None:
    """Import the modules named in ``$POLYEXP_PLUGINS``; importing them registers their plugins.

    A module that does not import is a ConfigError in one line, with the fix: its folder on
    ``$PYTHONPATH`` or its package installed when it is not found, else the error it raised and where.
    """
    for name in filter(None, (n.strip() for n in os.environ.get("POLYEXP_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(f"POLYEXP_PLUGINS names {name!r}: {module_failure(name, exc)}") from exc


def module_failure(module: str, exc: BaseException) -> str:
    """Why ``module`` did not import, and what to do, in one line::

        module 'mine' is not on the path: put the folder that holds it on PYTHONPATH
        (PYTHONPATH=/path/to/folder), or pip install the package that provides it
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name and (module + ".").startswith(exc.name + "."):
        return (f"module {module!r} is not on the path: put the folder that holds it on PYTHONPATH "
                f"(PYTHONPATH=/path/to/folder), or pip install the package that provides it")
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] == "polyexp":
        return (f"module {module!r} imports {exc.name!r}, which polyexp does not have: import the registries and "
                f"field types from polyexp itself (from polyexp import AVERAGINGS, Gt; the names: polyexp.__all__)")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (f"module {module!r} imports {exc.name!r}, which is not installed: "
                f"pip install the package that provides {exc.name.split('.')[0]!r}")
    detail = exc.msg if isinstance(exc, SyntaxError) else first_line(exc)
    return f"module {module!r} failed to import: {type(exc).__name__}: {detail}{_where(module, exc)}"


def _where(module: str, exc: BaseException) -> str:
    """`` (file, line N)``: the module's own line that raised (else the deepest one), for messages."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    try:
        origin = getattr(importlib.util.find_spec(module), "origin", None)
    except Exception:  # a package whose __init__ is what failed
        origin = None
    own = [f for f in frames if f.filename == origin] or frames
    return f" ({own[-1].filename}, line {own[-1].lineno})" if own else ""


def _distribution(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"


def _read_signature(
    label: str, fn: Callable[..., Any], call_args: tuple[str, ...], context: tuple[str, ...]
) -> tuple[tuple[Param, ...], tuple[str, ...]]:
    signature = inspect.signature(fn)
    hints = _parameter_hints(fn)
    parameters = list(signature.parameters.values())
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ][: len(call_args)]
    if len(positional) < len(call_args) or any(p.name in context for p in positional):
        raise TypeError(f"{label} must take ({', '.join(call_args)}) first, then its config fields")
    params, wanted = [], []
    for p in parameters[len(positional):]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{label}: *{p.name} cannot be a config field; name each field")
        if p.name in context:
            wanted.append(p.name)
            continue
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
    return tuple(params), tuple(wanted)


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    # Only the parameters': a return type may be imported for type checking alone (keras.Model).
    annotations = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "return"}
    holder = types.SimpleNamespace(__annotations__=annotations)
    return typing.get_type_hints(holder, globalns=getattr(fn, "__globals__", {}), include_extras=True)


def _param(name: str, hint: Any, default: Any) -> Param:
    hint, extras = _strip_annotated(hint)
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unions other than Optional[X] are not supported: {hint}")
        hint, optional = args[0], True
        hint, more = _strip_annotated(hint)
        extras += more
    bounds = tuple(e for e in extras if isinstance(e, Bound))
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
        item, item_extras = _strip_annotated(args[0])
        bounds += tuple(e for e in item_extras if isinstance(e, Bound))
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
    files = [e for e in extras if isinstance(e, File)]
    return Param(name, value_type, default, bounds, choices, _affects(extras), bool(files),
                 any(f.glob for f in files))


def _strip_annotated(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, tuple(extras)
    return hint, ()


def _affects(extras: Sequence[Any]) -> Affects | None:
    marks = [e for e in extras if isinstance(e, Affects)]
    return marks[-1] if marks else None


def _without_none(t: Any) -> Any:
    if typing.get_origin(t) is Union:
        return next(a for a in typing.get_args(t) if a is not type(None))
    return t


def _type_name(t: Any) -> str:
    if typing.get_origin(t) is Union:
        return f"{_type_name(_without_none(t))} | None"
    if typing.get_origin(t) is list:
        return f"list[{_type_name(typing.get_args(t)[0])}]"
    return getattr(t, "__name__", str(t))


def _plain(value: Any) -> Any:
    """A config value as plain Python: OmegaConf's ListConfig becomes a list."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
