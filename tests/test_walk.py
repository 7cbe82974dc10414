"""The walk of one job: from the command line to its logged run, each polyexp module is passed once.

``benchmarks/walk.py`` runs ``python -m polyexp`` with a tracer (``sys.settrace``) that sees every call
of a function whose code lives in ``polyexp/`` or ``hydra_plugins/polyexp_sweeper/``. Each call's
*module stack* is the polyexp modules on the call stack, outermost first, other code (Python, Hydra,
TensorFlow, MLflow) left out and consecutive frames of one module collapsed into one; nested
functions, lambdas and comprehensions count as the module that defines them. A module is
*re-entered* when a call puts it on a module stack it is on already, another polyexp module between
the two: control went down a layer and came back up (a callback into a higher layer, or calls going
round between modules). The job (``epochs=20``, a fresh SQLite store and trajectory cache, Hydra's
run folder, all under the test's temporary folder) must re-enter none but the one kind of call the
plugin registry is for: ``core.registry`` calling a plugin that a group's module defines, when that
module asked for it (``models.build_model`` calling the built-in ``mlp``). The detector's own tests
run it on two tiny modules, with a callback and without.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, Cli, table

spec = importlib.util.spec_from_file_location("walk", ROOT / "benchmarks" / "walk.py")
walk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(walk)

PLUGIN_CALL = "polyexp.core.registry:Plugin.__call__"


@pytest.fixture
def two_modules(tmp_path, monkeypatch):
    """``pkg.high`` calls ``pkg.low``: once handing it a callback, once straight; and a generator."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(textwrap.dedent("""
        def call(callback):
            return callback() + 1

        def value():
            return 41

        def total(numbers):
            return sum(numbers)
    """))
    (package / "high.py").write_text(textwrap.dedent("""
        from pkg import low

        def with_callback():
            return low.call(lambda: 41)

        def straight():
            return low.value() + [n for n in (1,)][0]

        def with_generator():
            return low.total(n for n in range(3))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg.high

    yield pkg.high
    for name in ("pkg", "pkg.high", "pkg.low"):
        sys.modules.pop(name, None)


def traced(root: Path, function) -> dict:
    tracer = walk.Walk(lambda filename: walk.module_of_file(filename, root, ("pkg",)))
    tracer.install()
    try:
        function()
    finally:
        tracer.uninstall()
    return tracer.report()


def test_a_callback_into_the_calling_module_is_a_reentry(two_modules, tmp_path):
    report = traced(tmp_path, two_modules.with_callback)
    assert [(r["module"], r["stack"], r["count"]) for r in report["reentries"]] == [
        ("pkg.high", ["pkg.high", "pkg.low", "pkg.high"], 1)]
    assert report["reentries"][0]["example"] == [
        "pkg.high:with_callback", "pkg.low:call", "pkg.high:with_callback.<locals>.<lambda>"]
    assert report["reentries"][0]["called_from"] == "pkg.low:call"
    assert report["entries"] == {"pkg.high": 2, "pkg.low": 1}


def test_straight_calls_and_comprehensions_reenter_nothing(two_modules, tmp_path):
    report = traced(tmp_path, two_modules.straight)
    assert report["reentries"] == []
    assert [(s["from"], s["to"], s["calls"]) for s in report["walk"]] == [
        (walk.OUTSIDE, "pkg.high", 1), ("pkg.high", "pkg.low", 1)]


def test_a_generator_run_by_a_lower_module_is_a_reentry_entered_once(two_modules, tmp_path):
    report = traced(tmp_path, two_modules.with_generator)
    [found] = report["reentries"]
    assert found["stack"] == ["pkg.high", "pkg.low", "pkg.high"]
    assert found["count"] == 4  # started, then resumed for each of 3 numbers and for the end
    assert report["entries"] == {"pkg.high": 2, "pkg.low": 1}  # the generator's start counts, not its resumptions


def test_module_stacks_collapse_and_name_modules():
    assert walk.collapse(["a", None, "a", "b", "b", None, "a"]) == ["a", "b", "a"]
    assert walk.reenters(["a", "b", "a"]) and not walk.reenters(["a", "b", "c"])
    assert walk.module_of_file(str(ROOT / "polyexp" / "run" / "runner.py")) == "polyexp.run.runner"
    assert walk.module_of_file(str(ROOT / "polyexp" / "__init__.py")) == "polyexp"
    assert walk.module_of_file(str(ROOT / "benchmarks" / "walk.py")) is None
    assert walk.module_of_file(json.__file__) is None


@pytest.mark.slow
def test_one_job_passes_each_module_once(cli: Cli, tmp_path):
    report_path = tmp_path / "walk.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "walk.py"), "--report", str(report_path), "--",
         "epochs=20", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=cli.workdir, env=cli.env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(table(result.stdout)) == 10  # the job ran to its table
    report = json.loads(report_path.read_text())
    print(walk.format_report(report))
    callbacks = [r for r in report["reentries"] if r["called_from"] != PLUGIN_CALL]
    assert callbacks == []
    for found in report["reentries"]:  # the registry calls a plugin its own group's module asked for
        asked = [frame for frame in found["example"][:-1] if not frame.startswith("polyexp.core.registry:")][-1]
        assert asked.startswith(found["module"] + ":"), found
    steps = [(s["from"].removeprefix("polyexp."), s["to"].removeprefix("polyexp.")) for s in report["walk"]]
    layers = [("__main__", "app"), ("app", "task"), ("task", "core.settings"), ("task", "run.tracking"),
              ("task", "run.runner"),
              ("run.runner", "core.outcome"), ("run.runner", "run.trajectory_cache"),
              ("run.trajectory_cache", "core.outcome"), ("core.outcome", "core.training"),
              ("run.runner", "run.outputs"), ("run.outputs", "run.plots")]
    assert [step for step in steps if step in layers] == sorted(layers, key=steps.index)
    assert set(layers) <= set(steps)
    assert report["entries"]["polyexp.run.runner"] == 1


def test_a_two_job_sweep_passes_each_module_once(cli: Cli, tmp_path):
    """The launch wing too: the sweeper, the sweep's parent and its summary, and each job, entered from above only."""
    report_path = tmp_path / "walk.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "walk.py"), "--report", str(report_path), "--",
         "averaging=equal,exp", "averaging.alpha=2", "epochs=20", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"],
        cwd=cli.workdir, env=cli.env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep: 2 jobs ranked on validation" in result.stdout
    report = json.loads(report_path.read_text())
    print(walk.format_report(report))
    assert [r for r in report["reentries"] if r["called_from"] != PLUGIN_CALL] == []
    steps = {(s["from"].removeprefix("polyexp."), s["to"].removeprefix("polyexp.")) for s in report["walk"]}
    assert {("sweep.sweeper", "sweep.parent"), ("sweep.sweeper", "task"), ("sweep.parent", "sweep.summary"),
            ("sweep.sweeper", "run.command_line")} <= steps
    assert report["entries"]["polyexp.run.runner"] == 2  # once per job
    readers = {s["from"].removeprefix("polyexp.") for s in report["walk"] if s["to"] == "polyexp.run.command_line"}
    # the command line parsed and checked (app, hydra_setup), swept (sweeper), its parent named, jobs named
    assert readers == {"app", "hydra_setup", "sweep.sweeper", "sweep.parent", "run.job"}
