"""The private names and undocumented contracts of Hydra and submitit that polyexp relies on, one test each.

A release that renames or reshapes one fails here, with the polyexp code that needs it, rather than in a
sweep. ``polyexp/sweep/sweeper.py`` derives from Hydra's ``BasicSweeper``; ``polyexp/sweep/slurm.py``
builds submitit's sbatch script and waits on SLURM jobs of its own class.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
from types import ModuleType

import hydra
import pytest

SWEEPER = "polyexp/sweep/sweeper.py's PluginAwareSweeper"
SLURM = "polyexp/sweep/slurm.py"


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def assigned_attributes(function: object) -> set[str]:
    """The ``self.<name> = ...`` targets in a function's source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    return {target.attr for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"}


def submitit() -> ModuleType:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="polyexp[submitit] is not installed")
    return pytest.importorskip("submitit")


def test_hydra_basic_sweeper_is_where_polyexp_imports_it():
    from hydra.plugins.sweeper import Sweeper

    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    except ImportError as exc:
        pytest.fail(f"Hydra {hydra.__version__} moved BasicSweeper ({exc}); {SWEEPER} derives from it")
    assert issubclass(BasicSweeper, Sweeper), f"Hydra {hydra.__version__}'s BasicSweeper is no Sweeper"


def test_polyexp_sweeper_init_sets_exactly_basic_sweeper_init_attributes():
    # PluginAwareSweeper.__init__ stands in for BasicSweeper.__init__ (it cannot call it), so it must set
    # every attribute that BasicSweeper's methods (sweep, get_job_batch, is_done) read.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    from polyexp.sweep.sweeper import PluginAwareSweeper

    assert parameters(BasicSweeper.__init__) == ["self", "max_batch_size", "params"], (
        f"Hydra {hydra.__version__} changed BasicSweeper.__init__'s parameters: "
        f"{inspect.signature(BasicSweeper.__init__)}; {SWEEPER}.__init__ mirrors them")
    theirs, ours = assigned_attributes(BasicSweeper.__init__), assigned_attributes(PluginAwareSweeper.__init__)
    assert theirs == ours, (f"Hydra {hydra.__version__}'s BasicSweeper.__init__ sets {sorted(theirs)}; "
                            f"{SWEEPER}.__init__ sets {sorted(ours)}")
    assert set(vars(BasicSweeper(max_batch_size=None))) == set(vars(PluginAwareSweeper())), (
        f"the attributes of Hydra {hydra.__version__}'s BasicSweeper and of {SWEEPER} differ once made")


@pytest.mark.parametrize(("owner", "name", "expected"), [
    ("BasicSweeper", "split_arguments", ["overrides", "max_batch_size"]),
    ("BasicSweeper", "split_overrides_to_chunks", ["lst", "n"]),
    ("Sweeper", "validate_batch_is_legal", ["self", "batch"]),
])
def test_the_sweeper_hooks_polyexp_overrides_are_hydras(owner: str, name: str, expected: list[str]):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.plugins.sweeper import Sweeper

    cls = {"BasicSweeper": BasicSweeper, "Sweeper": Sweeper}[owner]
    assert name in vars(cls), f"Hydra {hydra.__version__}'s {owner} has no {name}; {SWEEPER} overrides it"
    static = isinstance(vars(cls)[name], staticmethod)
    assert static == (expected[0] != "self"), f"Hydra {hydra.__version__}'s {owner}.{name} is " + (
        "now a static method" if static else "no longer a static method") + f"; {SWEEPER} calls it as one was"
    assert parameters(getattr(cls, name)) == expected, (
        f"Hydra {hydra.__version__} changed {owner}.{name}{inspect.signature(getattr(cls, name))}; "
        f"{SWEEPER} takes and passes {expected}")
    # BasicSweeper.sweep must still call the hook, on the sweeper, for the override to matter.
    source = inspect.getsource(BasicSweeper.sweep)
    if name != "split_overrides_to_chunks":  # polyexp calls that one itself
        assert f"self.{name}(" in source, f"Hydra {hydra.__version__}'s BasicSweeper.sweep no longer calls {name}"


def test_basic_sweeper_parse_config_gives_the_sweeper_params_as_overrides():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    assert hasattr(BasicSweeper, "_parse_config"), (
        f"Hydra {hydra.__version__}'s BasicSweeper has no _parse_config; {SWEEPER}.sweep calls it")
    sweeper = BasicSweeper(max_batch_size=None, params={"seed": "1,2"})
    assert sweeper._parse_config() == ["seed=1,2"], (
        f"Hydra {hydra.__version__}'s BasicSweeper._parse_config no longer gives hydra.sweeper.params as overrides")


def test_submitit_writes_the_sbatch_script_from_the_executors_parameters(tmp_path, monkeypatch):
    submitit()
    from polyexp.sweep.slurm import slurm_executor

    try:
        from submitit.slurm.slurm import _make_sbatch_string
    except ImportError as exc:
        pytest.fail(f"submitit moved _make_sbatch_string ({exc}); {SLURM}'s sbatch_refusal writes its script")
    assert parameters(_make_sbatch_string)[:2] == ["command", "folder"], (
        f"submitit changed _make_sbatch_string{inspect.signature(_make_sbatch_string)}; {SLURM}'s "
        "sbatch_refusal passes command, folder and the executor's parameters")
    (tmp_path / "srun").write_text("#!/bin/sh\n")  # submitit's SLURM executor wants srun on PATH
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path), prepend=os.pathsep)
    executor = slurm_executor(tmp_path, {"partition": "debug", "mem_gb": 3, "cpus_per_task": 2, "timeout_min": 7,
                                         "max_num_timeout": 0, "additional_parameters": {}})
    # The public AutoExecutor.parameters: the same dict as its SLURM executor's, in sbatch's names.
    assert {"partition": "debug", "mem": "3GB", "cpus_per_task": 2, "time": 7}.items() <= executor.parameters.items(), (
        f"submitit's AutoExecutor.parameters no longer holds its SLURM executor's: {executor.parameters}")
    script = _make_sbatch_string(command="true", folder=tmp_path, **executor.parameters)
    for line in ("#SBATCH --partition=debug", "#SBATCH --mem=3GB", "#SBATCH --cpus-per-task=2", "#SBATCH --time=7"):
        assert line in script.splitlines(), f"submitit's sbatch script lacks {line!r}:\n{script}"


def test_submitit_jobs_ask_the_watcher_of_their_own_class(tmp_path):
    # polyexp's SLURM jobs are a SlurmJob subclass whose class attribute `watcher` overrides submitit's.
    module = submitit()
    from submitit.slurm.slurm import SlurmInfoWatcher

    from polyexp.sweep.slurm import controller_aware_job

    assert parameters(SlurmInfoWatcher.get_state) == ["self", "job_id", "mode"], (
        f"submitit changed SlurmInfoWatcher.get_state{inspect.signature(SlurmInfoWatcher.get_state)}; "
        f"{SLURM}'s watcher overrides it")

    class Asked(SlurmInfoWatcher):
        def get_state(self, job_id: str, mode: str = "standard") -> str:
            return "CANCELLED"

    class Job(module.SlurmJob):
        watcher = Asked(delay_s=60)

    job = Job(tmp_path / "%j", "7")
    assert job.state == "CANCELLED" and job.done(), (
        "submitit's SlurmJob no longer asks self.watcher for its state; polyexp's jobs would wait on sacct alone")
    ours = controller_aware_job()
    assert issubclass(ours, module.SlurmJob) and parameters(type(ours.watcher).get_state) == ["self", "job_id", "mode"]
    assert type(module.SlurmJob.watcher) is SlurmInfoWatcher, f"{SLURM} changed submitit's SlurmJob.watcher"


def test_hydra_submitit_launcher_call_takes_the_arguments_polyexp_submits():
    submitit()
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

    expected = ["self", "sweep_overrides", "job_dir_key", "job_num", "job_id", "singleton_state"]
    assert parameters(BaseSubmititLauncher.__call__) == expected, (
        f"Hydra's submitit launcher changed BaseSubmititLauncher.__call__"
        f"{inspect.signature(BaseSubmititLauncher.__call__)}; {SLURM}'s SlurmLauncher._submit passes {expected[1:]}")
