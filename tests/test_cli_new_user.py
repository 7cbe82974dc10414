"""A new user's walk through the real CLI: a typo, ``+key``, a broken plugin module, an empty CSV.

Each mistake gets one line that names it and the fix, and nothing runs.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli, make_cli

pytestmark = pytest.mark.slow

EPOCH = "epoch is not a polyexp setting (did you mean epochs?); settings: seed, seeds, epochs"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args", [
    ("epoch=10",),
    ("+epoch=10",),
    ("++epoch=10",),
    ("epoch=1,2", "-m"),
    ("averaging=exp", "averaging.alpha=1,2", "+epoch=10", "-m"),
    ("epochs=1", "+epoch=10", "hydra/launcher=joblib", "-m"),
])
def test_a_key_polyexp_does_not_know_is_refused_in_one_line_before_anything_runs(tmp_path, args):
    cli = make_cli(tmp_path)
    result = cli.run(*args)
    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line.startswith(EPOCH)
    assert result.stdout == "" and sorted(p.name for p in cli.workdir.iterdir()) == []


def test_a_typo_in_a_nested_setting_or_a_plugin_field_names_the_close_match(tmp_path):
    cli = make_cli(tmp_path)
    for args, message in [
        (("tracking.experimnt=x",), "tracking.experimnt is not a setting (did you mean tracking.experiment?)"),
        (("averaging=exp", "averaging.alpah=3"), "averaging.alpah is not a field of any averaging option "
                                                 "(did you mean averaging.alpha?)"),
    ]:
        result = cli.run(*args)
        assert result.returncode == 1
        (line,) = lines(result.stderr)
        assert line.startswith(message)


def test_hydra_keys_stay_allowed(tmp_path):
    result = make_cli(tmp_path).run("hydra.job.name=walk", "hydra/launcher=joblib", "+hydra.job.extra=1",
                                    "--cfg", "hydra", "-p", "hydra.job.name")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "walk"


def plugins_listing(cli: Cli, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polyexp.plugins", *args], cwd=cli.workdir,
                          env={**cli.env, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("module", "source", "message"), [
    ("not_there", None, "POLYEXP_PLUGINS names 'not_there': module 'not_there' is not on the path: put the folder "
                        "that holds it on PYTHONPATH (PYTHONPATH=/path/to/folder), or pip install the package"),
    ("needs_dep", "import not_installed_dep\n", "POLYEXP_PLUGINS names 'needs_dep': module 'needs_dep' imports "
                                                "'not_installed_dep', which is not installed: pip install the package"),
    ("raises", "x = 1\nraise RuntimeError('boom')\n", "POLYEXP_PLUGINS names 'raises': module 'raises' failed to "
                                                      "import: RuntimeError: boom ({folder}/raises.py, line 2)"),
    ("calls", "import json\n\njson.loads('{')\n", "POLYEXP_PLUGINS names 'calls': module 'calls' failed to import: "
                                                 "JSONDecodeError: Expecting property name enclosed in double quotes: "
                                                 "line 1 column 2 (char 1) ({folder}/calls.py, line 3)"),
    ("syntax", "def f(:\n", "POLYEXP_PLUGINS names 'syntax': module 'syntax' failed to import: SyntaxError: "),
    ("wrong_path", "from polyexp.no_such_module import MODELS\n", "POLYEXP_PLUGINS names 'wrong_path': module "
                   "'wrong_path' imports 'polyexp.no_such_module', which polyexp does not have: import the registries "
                   "and field types from polyexp itself (from polyexp import AVERAGINGS, Gt; the names: "
                   "polyexp.__all__)"),
])
def test_a_plugin_module_that_does_not_import_is_one_line_with_the_fix(tmp_path, module, source, message):
    cli = make_cli(tmp_path / "work")
    folder = tmp_path / "plugins"
    folder.mkdir()
    if source is not None:
        (folder / f"{module}.py").write_text(source)
    env = {"POLYEXP_PLUGINS": module, "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    for result in (cli.run("epochs=1", env=env), plugins_listing(cli, env=env)):
        assert result.returncode == 1
        (line,) = lines(result.stderr)
        assert line.startswith(message.format(folder=folder)), line
    assert not (cli.workdir / "outputs").exists()


def test_an_installed_entry_point_that_does_not_import_is_skipped_in_one_line(tmp_path):
    cli = make_cli(tmp_path / "work")
    site = tmp_path / "site"
    info = site / "brokenplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[polyexp.averaging]\nbroken = brokenplug_gone:weights\n")
    result = plugins_listing(cli, "averaging", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0 and "exp  [built in]" in result.stdout
    (line,) = lines(result.stderr)
    assert line.startswith("skipping averaging plugin 'broken': package brokenplug 0.1 declares it as "
                           "brokenplug_gone:weights; module 'brokenplug_gone' is not on the path")


def test_a_csv_with_a_header_and_no_rows_says_so(tmp_path):
    cli = make_cli(tmp_path)
    Path(cli.workdir / "rows.csv").write_text("x1,x2,label\n")
    result = cli.run("data=csv", "data.path=rows.csv", "data.target=label")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("data.path='rows.csv' is not allowed: it has a header row and no rows after it; it needs one row per "
            "example") in lines(result.stderr)
    assert "single class" not in result.stderr


LAST_MONTHS_PLUGIN = """\
from typing import Annotated

from polyexp.averaging import AVERAGINGS
from polyexp.registry import Gt


@AVERAGINGS.register
def harmonic(n: int, *, power: Annotated[float, Gt(0)] = 1.0) -> list[float]:
    \"\"\"Member i weighs 1 / i**power.\"\"\"
    return [1.0 / i**power for i in range(1, n + 1)]
"""


def test_a_plugin_written_with_last_months_imports_runs_with_one_warning_per_moved_import(tmp_path):
    cli = make_cli(tmp_path / "work")
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "old_plugin.py").write_text(LAST_MONTHS_PLUGIN)
    env = {"POLYEXP_PLUGINS": "old_plugin", "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    result = cli.run("averaging=harmonic", "averaging.power=2", "epochs=10", env=env)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "FutureWarning" in line]
    assert warned == [
        f"{folder}/old_plugin.py:3: FutureWarning: polyexp.averaging moved to polyexp.core.averaging; from polyexp "
        "import AVERAGINGS, Validation, WEIGHTINGS (the old path goes in a coming release)",
        f"{folder}/old_plugin.py:4: FutureWarning: polyexp.registry moved to polyexp.core.registry; from polyexp "
        "import Affects, File, Ge, Gt, Le, Lt, Registry (the old path goes in a coming release)",
    ]
    (run,) = cli.runs()
    assert run.data.tags["polyexp.weighting"] == "harmonic"


def test_the_public_names_are_the_modules_own_and_load_nothing_heavy():
    script = ("import sys, polyexp; heavy = {m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules}; "
              "from polyexp import AVERAGINGS, Gt, DATASETS, MODELS; import polyexp.core.averaging as a; "
              "import polyexp.core.registry as r; print(sorted(heavy), AVERAGINGS is a.AVERAGINGS, Gt is r.Gt)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["[]", "True", "True"]
    import polyexp

    for name in polyexp.__all__:
        assert getattr(polyexp, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        polyexp.NOPE  # noqa: B018
