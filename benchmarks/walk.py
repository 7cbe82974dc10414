"""The walk of one command: the polyexp modules it passes, and whether it passes any of them twice.

    python benchmarks/walk.py --report walk.json -- epochs=20 hydra.run.dir=/tmp/walk/out
    python benchmarks/walk.py --report walk.json -- averaging.alpha=1,2 averaging=exp -m

It runs ``python -m polyexp`` with the arguments after ``--`` in this process, a tracer installed
first, and writes a JSON report when the command ends (however it ends); the command's own exit
status is kept. What it measures:

- every Python call of a function whose code lives in ``polyexp/`` or ``hydra_plugins/polyexp_sweeper/``
  (nested functions, lambdas and comprehensions count as the module that defines them) is placed on
  its *module stack*: the polyexp modules on the call stack, outermost first, with the frames of
  other code (Python, Hydra, TensorFlow, MLflow) left out and consecutive frames of one module
  collapsed into one;
- a module is **re-entered** when it appears twice on one module stack, another polyexp module
  between: control went down a layer and came back up into a module already on the stack (a
  callback into a higher layer, or calls going round between modules). A re-entry is recorded when
  it happens, the call that enters the module again, and counted per distinct module stack, with an
  example call stack (``module:function`` frames); the calls made below it are not counted again;
- a module is **entered** when one of its functions is called and the nearest polyexp frame below
  it belongs to another module (or to none: the command itself, an ``atexit`` handler); a generator
  resumed is the same entry going on, counted once, when it starts. Entries per module are for
  information: a runner that calls tracking ten times enters tracking ten times;
- the **walk**: each distinct step "module A called module B", in the order it first happened.

A module's own body, run as it is imported, is neither an entry nor a step of the walk (``imports``
lists those modules in the order they ran); it is on the module stacks all the same, so an import
that calls back into a module being imported is a re-entry.

A run without re-entries has ``"reentries": []`` in its report. ``tests/test_walk.py`` runs it on one
small job and requires exactly that.
"""

from __future__ import annotations

import argparse
import dis
import functools
import inspect
import json
import runpy
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# where polyexp's code lives: the package, and the folder Hydra's plugin scan imports the sweeper from
PACKAGES = ("polyexp", "hydra_plugins/polyexp_sweeper")
_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
OUTSIDE = "<outside>"


@functools.cache
def _start(code: CodeType) -> int:
    """Where a generator's frame first runs: the offset of its first RESUME (later calls resume past it)."""
    return next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)


def module_of_file(filename: str, root: Path = ROOT, packages: Sequence[str] = PACKAGES) -> str | None:
    """``polyexp/run/runner.py`` -> ``polyexp.run.runner``; None for a file outside ``packages``."""
    try:
        relative = Path(filename).resolve().relative_to(root)
    except ValueError:
        return None
    if relative.suffix != ".py" or not any(relative.as_posix().startswith(p + "/") for p in packages):
        return None
    return ".".join(relative.with_suffix("").parts).removesuffix(".__init__")


def collapse(modules: Iterable[str | None]) -> list[str]:
    """The module stack of a call stack's modules (outermost first): others dropped, repeats in a row merged."""
    stack: list[str] = []
    for module in modules:
        if module is not None and (not stack or stack[-1] != module):
            stack.append(module)
    return stack


def reenters(stack: Sequence[str]) -> bool:
    """Whether the innermost module of a module stack is entered again: it is on the stack below already."""
    return bool(stack) and stack[-1] in stack[:-1]


class Walk:
    """The tracer and what it saw; :meth:`install` starts it for this thread and new ones."""

    def __init__(self, module_of: Callable[[str], str | None]) -> None:
        self._module_of_file = module_of
        self._modules: dict[str, str | None] = {}
        self.entries: Counter[str] = Counter()
        self.imports: list[str] = []  # the modules whose code ran as they were imported, in that order
        self.steps: dict[tuple[str, str], int] = {}  # (caller, callee) -> calls, in the order first seen
        self.reentries: dict[tuple[str, ...], dict[str, Any]] = {}
        self._before: tuple[Any, Any] = (None, None)

    def module(self, filename: str) -> str | None:
        try:
            return self._modules[filename]
        except KeyError:
            module = self._modules[filename] = self._module_of_file(filename)
            return module

    def install(self) -> None:
        self._before = sys.gettrace(), threading.gettrace()
        threading.settrace(self.trace)
        sys.settrace(self.trace)

    def uninstall(self) -> None:
        sys.settrace(self._before[0])
        threading.settrace(self._before[1])  # type: ignore[arg-type]

    def trace(self, frame: FrameType, event: str, arg: object) -> None:
        """The global trace function: called for every Python frame as it starts or resumes (event "call")."""
        code = frame.f_code
        module = self.module(code.co_filename)
        if module is None:
            return None
        caller = frame.f_back
        while caller is not None and self.module(caller.f_code.co_filename) is None:
            caller = caller.f_back
        caller_module = self.module(caller.f_code.co_filename) if caller is not None else OUTSIDE
        if caller_module == module:
            return None  # the same module going on: neither an entry nor a new module stack
        resumed = bool(code.co_flags & _GENERATOR_FLAGS) and frame.f_lasti > _start(code)
        if code.co_name == "<module>":
            self.imports.append(module)
        elif not resumed:
            self.entries[module] += 1
            step = (caller_module, module)
            self.steps[step] = self.steps.get(step, 0) + 1
        frames = []
        walker: FrameType | None = frame
        while walker is not None:
            frames.append(walker)
            walker = walker.f_back
        frames.reverse()
        stack = collapse(self.module(f.f_code.co_filename) for f in frames)
        if reenters(stack):
            seen = self.reentries.setdefault(tuple(stack), {"count": 0})
            seen["count"] += 1
            if "example" not in seen:
                seen["example"] = [f"{m}:{f.f_code.co_qualname}" for f in frames
                                   if (m := self.module(f.f_code.co_filename)) is not None]
                seen["called_from"] = seen["example"][-2]  # the polyexp frame that called back in
        return None

    def report(self) -> dict[str, Any]:
        return {
            "reentries": [{"module": stack[-1], "stack": list(stack), **seen}
                          for stack, seen in self.reentries.items()],
            "entries": dict(self.entries.most_common()),
            "imports": self.imports,
            "walk": [{"from": caller, "to": callee, "calls": calls} for (caller, callee), calls in self.steps.items()],
        }


def format_report(report: dict[str, Any]) -> str:
    """The report for a reader: the walk, the entries, every re-entry."""
    lines = ["walk (module A calls module B, in the order first seen):"]
    lines += [f"  {step['from']} -> {step['to']}  ({step['calls']}x)" for step in report["walk"]]
    lines.append("entries per module: " + ", ".join(f"{m} {n}" for m, n in report["entries"].items()))
    lines.append(f"re-entries: {len(report['reentries'])}")
    for found in report["reentries"]:
        lines.append(f"  {found['module']} ({found['count']}x): {' -> '.join(found['stack'])}")
        lines += [f"      {frame}" for frame in found["example"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    parser.add_argument("args", nargs="*", help="python -m polyexp's arguments, after --")
    options = parser.parse_args(argv)
    walk = Walk(module_of_file)
    sys.argv = ["polyexp", *options.args]
    status: int | str | None = 0
    walk.install()
    try:
        runpy.run_module("polyexp", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = exc.code
    finally:
        walk.uninstall()
        options.report.write_text(json.dumps(walk.report(), indent=1))
        print(format_report(walk.report()), file=sys.stderr)
    if isinstance(status, str):
        print(status, file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
