"""Hydra's own launcher suites with ``hydra/sweeper=polyexp`` (``tests/hydra_suites.py``), in a fresh process."""

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_hydras_launcher_suites_pass_with_polyexps_sweeper(tmp_path):
    suites = ROOT / "tests" / "hydra_suites.py"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suites)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
