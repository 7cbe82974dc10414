"""What decides a job's numbers: derived from the config schema and the code, never kept by hand.

A result (a cached trajectory, a FINISHED run) is reused only when its identity is the same:

- **config**: the fields that change the numbers, found from the schema. A group's fields affect what
  its registry says (``averaging``: scoring; data, model, optimizer, window: training); a setting
  affects training unless its hint says ``Affects.SCORING`` or ``Affects.NOTHING`` (``threads``,
  ``tracking``, ``cache``);
- **code**: a fingerprint of every module that computes them: the module of each plugin in use
  (a plugin may call helpers there) and polyexp's own modules that train, average and score, each
  with the modules of its package that it imports. A fingerprint hashes the module's syntax tree
  without docstrings, so comments, docstrings and formatting never invalidate a result, and code
  always does;
- **libraries and platform**: the versions of TensorFlow, Keras, NumPy and scikit-learn, and the
  settings that change floating-point results (the machine, oneDNN on or off, visible GPUs).

The *trajectory* identity covers training (the cache key); the *job* identity covers everything
(what ``tracking.skip_finished`` matches)::

    trajectory_identity(plan).key      # 32 hex digits
    job_identity(plan).describe()      # {"config": ..., "code": {"polyexp.core.training": "3f2a...", ...}, ...}
"""

from __future__ import annotations

import ast
import functools
import glob
import hashlib
import importlib.util
import json
import marshal
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyexp.core.registry import Affects

if TYPE_CHECKING:
    from polyexp.core.settings import Plan

LIBRARIES = ("tensorflow", "keras", "numpy", "scikit-learn")
TRAINING_CODE = "polyexp.core.training"  # trains, with what it imports
SCORING_CODE = "polyexp.core.outcome"  # trains or reuses, averages and scores, with what it imports
_ORDER = {Affects.TRAINING: 0, Affects.SCORING: 1, Affects.NOTHING: 2}


@dataclass(frozen=True)
class Identity:
    """The config, code, libraries and platform that decide a set of numbers."""

    config: dict[str, Any]
    code: dict[str, str]  # module -> fingerprint
    libraries: dict[str, str]
    platform: dict[str, str]

    @property
    def key(self) -> str:
        return digest(self.describe(), 32)

    @property
    def code_key(self) -> str:
        return digest(self.code)

    def describe(self) -> dict[str, Any]:
        return {"config": self.config, "code": self.code, "libraries": self.libraries, "platform": self.platform}


def trajectory_identity(plan: Plan) -> Identity:
    """What decides the trained trajectory (the trajectory cache's key)."""
    return _identity(plan, Affects.TRAINING, [TRAINING_CODE])


def job_identity(plan: Plan) -> Identity:
    """What decides every number of the job (what resuming a sweep matches)."""
    return _identity(plan, Affects.SCORING, [TRAINING_CODE, SCORING_CODE])


def config_identity(plan: Plan, up_to: Affects) -> dict[str, Any]:
    """The config fields whose :class:`Affects` is ``up_to`` or earlier (training < scoring < nothing)."""
    from polyexp.core.settings import GROUPS, SETTINGS

    def wanted(affects: Affects) -> bool:
        return _ORDER[affects] <= _ORDER[up_to]

    chosen: dict[str, Any] = {}
    for registry in GROUPS:
        plugin = plan.plugins[registry.group].plugin
        config = plan.plugins[registry.group].config
        fields = {"name": plugin.name}
        for p in plugin.params:
            if wanted(p.affects or registry.affects):
                fields[p.name] = config[p.name]
                if p.is_file and config[p.name] is not None:
                    fingerprint = glob_fingerprint if p.is_glob else file_fingerprint
                    fields[f"{p.name} content"] = fingerprint(config[p.name])
        if wanted(registry.affects) or len(fields) > 1:
            chosen[registry.group] = fields
    for param in SETTINGS:
        if wanted(param.affects or Affects.TRAINING):
            chosen[param.name] = plan.config.get(param.name, param.default)
    return chosen


def _identity(plan: Plan, up_to: Affects, roots: Iterable[str]) -> Identity:
    from polyexp.core.settings import GROUPS

    modules = set()
    for root in roots:
        modules |= module_closure(root)
    for registry in GROUPS:
        if _ORDER[registry.affects] <= _ORDER[up_to]:
            modules |= module_closure(plan.plugins[registry.group].plugin.fn.__module__)
    code = {name: module_fingerprint(name) for name in sorted(modules)}
    return Identity(config_identity(plan, up_to), code, libraries(), platform_settings())


def file_fingerprint(path: str) -> str:
    """A hash of a file's bytes ("missing" if there is none): a data file edited in place is new data."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError:
        return "missing"
    return _file_digest(str(file.resolve()), stat.st_mtime_ns, stat.st_size)


def glob_fingerprint(pattern: str) -> str:
    """A hash of the names and bytes of the files a glob pattern matches: a file added, renamed or edited counts."""
    matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    return digest({path: file_fingerprint(path) for path in matches})


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def libraries() -> dict[str, str]:
    """The installed versions of the libraries that compute the numbers."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def platform_settings() -> dict[str, str]:
    """The platform and the settings that change floating-point results."""
    return {
        "machine": f"{platform.system()} {platform.machine()}",
        "onednn": "on" if _onednn() else "off",
        "gpus": _visible_gpus(),
        "deterministic_ops": os.environ.get("TF_DETERMINISTIC_OPS", "0"),
    }


def _onednn() -> bool:
    """Whether TensorFlow uses oneDNN: as it decided when it loaded, else as it will decide (the variable)."""
    if "tensorflow" in sys.modules:  # loaded before polyexp could set its default: ask it
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() not in ("0", "false")


def _visible_gpus() -> str:
    """How many GPUs a job sees: a count, since a launcher (Ray) gives identical jobs different ids."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return "all" if Path("/dev/nvidia0").exists() else "none"
    return str(len([device for device in visible.split(",") if device.strip()]))


def module_closure(name: str) -> set[str]:
    """``name`` and the modules of its top-level package that it imports, directly or not.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    top = name.split(".")[0]
    found: set[str] = set()
    todo = [name]
    while todo:
        module = todo.pop()
        if module in found:
            continue
        found.add(module)
        path = _source_path(module)
        if path is None:
            continue
        stat = path.stat()
        todo += [m for m in _imports(str(path), stat.st_mtime_ns, stat.st_size, module)
                 if m.split(".")[0] == top and _source_path(m) is not None]
    return found


def module_fingerprint(name: str) -> str:
    """A hash of the module's code: its syntax tree without docstrings (comments are not in it)."""
    path = _source_path(name)
    if path is None:
        module = sys.modules.get(name)
        return "unknown" if module is None else _compiled_fingerprint(module)
    stat = path.stat()
    return _fingerprint(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _fingerprint(path: str, mtime_ns: int, size: int) -> str:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return digest(ast.dump(tree, annotate_fields=False, include_attributes=False))


def _compiled_fingerprint(module: Any) -> str:
    """A module without a source file (a notebook's ``__main__``): its names and its functions' bytecode."""
    parts = []
    for name, value in sorted(vars(module).items()):
        code = getattr(value, "__code__", None)
        parts.append(name if code is None else f"{name} {hashlib.sha256(marshal.dumps(code)).hexdigest()}")
    return digest(parts)


@functools.lru_cache(maxsize=512)
def _source_path(module: str) -> Path | None:
    """The module's source file, found without importing it (finding a submodule imports its parents).

    A loaded module names its own file, even one no import finds again (a script's ``__main__``).
    """
    file = getattr(sys.modules.get(module), "__file__", None)
    if file and file.endswith(".py"):
        return Path(file)
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or ():
        base = Path(location).joinpath(*rest.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@functools.lru_cache(maxsize=512)
def _imports(path: str, mtime_ns: int, size: int, module: str) -> list[str]:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    package = module if Path(path).name == "__init__.py" else module.rpartition(".")[0]
    skipped = {id(n) for node in ast.walk(tree) if _is_type_checking_block(node) for n in ast.walk(node)}
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`
    return names


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def digest(value: Any, length: int = 16) -> str:
    """A short, stable hash of a JSON-able value."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)
