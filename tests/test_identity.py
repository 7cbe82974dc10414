"""Identity: derived from the schema and the code; comments never count, code always does."""

import os
import subprocess
import sys
import textwrap
import types

import pytest
from conftest import compose

from polyexp.core.identity import (
    config_identity,
    file_fingerprint,
    job_identity,
    module_closure,
    module_fingerprint,
    platform_settings,
    trajectory_identity,
)
from polyexp.core.registry import Affects
from polyexp.core.settings import plan_from


def identities(*overrides: str):
    plan = plan_from(compose(list(overrides)))
    return trajectory_identity(plan), job_identity(plan)


def test_the_config_part_follows_what_each_field_affects():
    plan = plan_from(compose(["averaging=exp", "ema_decays=[0.9]"]))
    training = config_identity(plan, Affects.TRAINING)
    everything = config_identity(plan, Affects.SCORING)
    assert {"data", "model", "optimizer", "window", "seed", "seeds", "epochs", "batch_size", "ema_decays",
            "swa_start"} <= set(training)
    assert "averaging" not in training and "recompute_bn" not in training
    assert everything["averaging"] == {"name": "exp", "alpha": 2.0} and everything["recompute_bn"] is True
    for runtime in ("threads", "verbose", "tracking", "cache"):
        assert runtime not in everything


def test_keys_change_exactly_with_what_changes_the_numbers():
    base_trajectory, base_job = identities("averaging=exp")
    alpha_trajectory, alpha_job = identities("averaging=exp", "averaging.alpha=4")
    runtime_trajectory, runtime_job = identities("averaging=exp", "tracking.experiment=x", "cache.enabled=false",
                                                 "threads=1", "verbose=true")
    seed_trajectory, _ = identities("averaging=exp", "seed=1")
    seeds_trajectory, _ = identities("averaging=exp", "seeds=2")
    assert base_trajectory.key == alpha_trajectory.key == runtime_trajectory.key
    assert base_job.key == runtime_job.key != alpha_job.key
    assert len({base_trajectory.key, seed_trajectory.key, seeds_trajectory.key}) == 3


def test_the_code_part_covers_the_loop_the_scoring_and_each_plugin_module():
    trajectory, job = identities("averaging=exp")
    core = {f"polyexp.core.{m}" for m in ("training", "metrics", "trajectory", "data", "models", "optimizers",
                                          "window")}
    assert core <= set(trajectory.code)
    assert "polyexp.core.averaging" not in trajectory.code and "polyexp.core.outcome" not in trajectory.code
    assert {f"polyexp.core.{m}" for m in ("outcome", "evaluation", "averaging", "statistics")} <= set(job.code)
    for io in ("polyexp.core.settings", "polyexp.run.tracking", "polyexp.run.runner", "polyexp.run.plots",
               "polyexp.core.identity"):
        assert io not in job.code  # what writes, logs or draws never decides a number
    assert set(trajectory.libraries) == {"tensorflow", "keras", "numpy", "scikit-learn"}


def write_module(folder, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("idmod_")]:
        del sys.modules[name]


def test_comments_docstrings_and_layout_do_not_change_a_fingerprint_and_code_does(plugin_folder):
    write_module(plugin_folder, "idmod_a", '''
        """A module."""
        def weights(n):
            """Equal."""
            return [1.0] * n
        ''')
    before = module_fingerprint("idmod_a")
    write_module(plugin_folder, "idmod_a", '''
        """A module, documented at length."""
        # a comment
        def weights(n):  # another
            """Equal weights, said differently."""

            return [1.0] * n
        ''')
    assert module_fingerprint("idmod_a") == before
    write_module(plugin_folder, "idmod_a", '''
        def weights(n):
            return [2.0] * n
        ''')
    assert module_fingerprint("idmod_a") != before


def test_a_module_counts_with_what_it_imports_from_its_package_except_for_type_checking(plugin_folder):
    package = plugin_folder / "idmod_pkg"
    package.mkdir()
    write_module(package, "__init__", "")
    write_module(package, "helpers", "def scale(x):\n    return 2 * x\n")
    write_module(package, "typing_only", "X = 1\n")
    write_module(package, "plugin", '''
        from typing import TYPE_CHECKING
        import json
        from idmod_pkg import helpers
        from .helpers import scale
        if TYPE_CHECKING:
            from idmod_pkg import typing_only
        ''')
    assert module_closure("idmod_pkg.plugin") == {"idmod_pkg.plugin", "idmod_pkg.helpers", "idmod_pkg"}
    assert "idmod_pkg.helpers" not in sys.modules  # finding the modules imported none of them


def test_the_platform_records_onednn_as_tensorflow_uses_it():
    script = ("import polyexp.core.identity as i, sys; "
              "print(i.platform_settings()['onednn'], 'tensorflow' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    # polyexp's default is off; "false" is off to TensorFlow too
    for setting, expected in ((None, "off"), ("1", "on"), ("0", "off"), ("false", "off"), ("FALSE", "off")):
        run_env = env if setting is None else {**env, "TF_ENABLE_ONEDNN_OPTS": setting}
        out = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == [expected, "False"]
    # A command that scores your own checkpoint files turns it on, unless set
    for setting, expected in ((None, "on"), ("0", "off")):
        run_env = env if setting is None else {**env, "TF_ENABLE_ONEDNN_OPTS": setting}
        out = subprocess.run([sys.executable, "-c", script, "trajectory=files", "data=npz"], env=run_env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.split() == [expected, "False"]
    import tensorflow  # noqa: F401 - loaded, TensorFlow itself says (this session loaded it with polyexp's default)

    assert platform_settings()["onednn"] == "off"


def test_a_module_without_a_source_file_counts_with_its_functions_code(monkeypatch):
    """A plugin defined in a notebook: editing its body changes the fingerprint."""
    def notebook(body: str) -> str:
        module = types.ModuleType("idmod_notebook")
        exec(compile(f"def plugin(x):\n    return {body}\n", "<cell>", "exec"), module.__dict__)
        monkeypatch.setitem(sys.modules, "idmod_notebook", module)
        return module_fingerprint("idmod_notebook")

    assert notebook("x + 1") == notebook("x + 1") != notebook("x + 2")


def test_a_data_file_under_home_is_hashed_as_the_data_plugins_read_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    assert file_fingerprint("~/rows.csv") == file_fingerprint(str(tmp_path / "rows.csv")) != "missing"


def test_the_platform_counts_the_visible_gpus_rather_than_naming_them(monkeypatch):
    seen = {}
    for visible in ("0", "1", "0,1", ""):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        seen[visible] = platform_settings()["gpus"]
    assert seen == {"0": "1", "1": "1", "0,1": "2", "": "0"}
