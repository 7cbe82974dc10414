"""A non-editable install carries its configs: `python -m polyexp` works from any folder."""

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )
    return target


def test_the_build_is_silent(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(ROOT)], capture_output=True, text=True, check=True,
    )
    assert "_Warning" not in built.stdout + built.stderr and "is absent from the" not in built.stdout + built.stderr


def test_the_wheel_ships_the_configs(site):
    installed = {p.relative_to(site / "polyexp").as_posix() for p in (site / "polyexp" / "conf").rglob("*.yaml")}
    assert installed == {"conf/config.yaml", "conf/hydra/launcher/slurm.yaml", "conf/hydra/launcher/ray_cluster.yaml"}
    assert not (site / "conf").exists()


def test_an_installed_copy_composes_from_any_folder(site, tmp_path):
    def polyexp(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                              capture_output=True, text=True)

    job = polyexp("polyexp", "averaging=exp", "--cfg", "job")
    assert job.returncode == 0, job.stderr
    assert "alpha: 2.0" in job.stdout and "n_samples: 1100" in job.stdout
    slurm = polyexp("polyexp", "hydra/launcher=slurm", "--cfg", "hydra", "--package", "hydra.launcher")
    assert slurm.returncode == 0 and "SlurmLauncher" in slurm.stdout
    assert "exp  [built in]" in polyexp("polyexp.plugins", "averaging").stdout
    sweeper = polyexp("polyexp", "--cfg", "hydra", "--package", "hydra.sweeper")
    assert "_target_: hydra_plugins.polyexp_sweeper.PolyexpSweeper" in sweeper.stdout
