"""Reuse follows the code: a plugin edited between two runs trains again and is not skipped; a comment is no edit.

The plugin is a module named in POLYEXP_PLUGINS, edited the way a user edits it (relu to tanh).
"""

import os
import textwrap
from pathlib import Path

import pytest
from conftest import Cli, table

pytestmark = pytest.mark.slow

SMALL = ("epochs=40", "window.size=3")
PLUGIN = '''
from polyexp.core.models import MODELS


@MODELS.register
def tiny(num_features, num_classes, *, width: int = 8):
    import keras

    inputs = keras.Input((num_features,))
    hidden = keras.layers.Dense(width, activation="{activation}")(inputs)  # {comment}
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))
'''


def write_plugin(folder: Path, activation: str = "relu", comment: str = "the hidden layer") -> None:
    (folder / "my_model.py").write_text(textwrap.dedent(PLUGIN.format(activation=activation, comment=comment)))
    (folder / "unrelated.py").write_text(f"# {comment}\nVALUE = 1\n")


@pytest.fixture
def plugin_cli(cli: Cli, tmp_path: Path) -> Cli:
    folder = tmp_path / "plugins"
    folder.mkdir()
    write_plugin(folder)
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    cli.env.update(POLYEXP_PLUGINS="my_model,unrelated", PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    cli.plugins = folder
    return cli


def trajectories(cli: Cli) -> list[str]:
    return [r.data.tags["polyexp.trajectory"] for r in cli.runs() if "polyexp.trajectory" in r.data.tags]


def test_a_single_run_trains_again_after_the_plugin_changes_and_not_after_a_comment(plugin_cli: Cli):
    cli = plugin_cli
    first = cli.run("model=tiny", *SMALL)
    assert first.returncode == 0, first.stderr
    write_plugin(cli.plugins, comment="a comment, edited; and the unrelated module too")
    same = cli.run("model=tiny", *SMALL)
    assert same.returncode == 0 and "reused the cached trajectory" in same.stderr
    assert table(same.stdout) == table(first.stdout)
    write_plugin(cli.plugins, activation="tanh")
    edited = cli.run("model=tiny", *SMALL)
    assert edited.returncode == 0, edited.stderr
    assert "reused" not in edited.stderr and table(edited.stdout) != table(first.stdout)
    assert trajectories(cli) == ["trained", "reused", "trained"]
    codes = [r.data.tags["polyexp.code"] for r in cli.runs()]
    assert codes[0] == codes[1] != codes[2]  # the run says why it differs


def test_a_resumed_sweep_runs_a_job_again_after_its_plugin_changes(plugin_cli: Cli):
    cli = plugin_cli
    sweep = ("model=tiny", "averaging=exp", "averaging.alpha=1,2", *SMALL, "-m")
    assert cli.run(*sweep).returncode == 0
    write_plugin(cli.plugins, comment="only a comment")
    resumed = cli.run(*sweep)
    assert resumed.returncode == 0 and resumed.stderr.count("skipped, its identity already has") == 2
    write_plugin(cli.plugins, activation="tanh")
    edited = cli.run(*sweep)
    assert edited.returncode == 0, edited.stderr
    assert "skipped, its identity" not in edited.stderr and "trained 1 seed(s)" in edited.stderr
    assert trajectories(cli) == ["trained", "reused", "trained", "reused"]
    parents = cli.sweeps()
    assert len(parents) == 1 and parents[0].data.metrics["jobs_finished"] == 2
