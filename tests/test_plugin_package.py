"""A plugin shipped as its own package (examples/polyexp-harmonic), found through its entry point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Cli, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harmonic_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(ROOT / "examples" / "polyexp-harmonic")],
        check=True, capture_output=True,
    )
    return site


def test_an_installed_plugin_package_is_listed_with_its_source(cli: Cli, harmonic_site):
    env = {**cli.env, "PYTHONPATH": str(harmonic_site)}
    listing = subprocess.run([sys.executable, "-m", "polyexp.plugins", "averaging"], env=env,
                             capture_output=True, text=True, check=True).stdout
    assert "harmonic  [package polyexp-harmonic 0.1.0]  Member i (1 = the latest) weighs 1 / i**power." in listing
    assert "power: float = 1.0 (> 0)" in listing
    assert "exp  [built in]" in listing and "alpha: float = 2.0 (> 0)" in listing


def test_an_installed_plugin_is_selected_from_the_command_line(cli: Cli, harmonic_site):
    result = cli.run("averaging=harmonic", "averaging.power=2", "epochs=30", env={"PYTHONPATH": str(harmonic_site)})
    assert result.returncode == 0, result.stderr
    assert len(table(result.stdout)) == 10
    (run,) = cli.runs()
    assert run.info.run_name == "harmonic power=2 epochs=30" and run.data.params["averaging.power"] == "2.0"
    (folder,) = [p.parent for p in (cli.workdir / "outputs").rglob("weights.json")]
    weights = json.loads((folder / "weights.json").read_text())["weights"]["3"]
    assert weights == pytest.approx([36 / 49, 9 / 49, 4 / 49])
    bad = cli.run("averaging=harmonic", "averaging.power=0", env={"PYTHONPATH": str(harmonic_site)})
    assert "averaging.power=0.0 is not allowed: it must be > 0" in bad.stderr
