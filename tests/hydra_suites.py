"""Hydra's own launcher suites, as Hydra's plugins test themselves, run with ``hydra/sweeper=polyexp``.

``tests/test_hydra_suites.py`` runs this file in a pytest process of its own: the suites read and reset
Hydra's process-wide singletons, which the other tests of a worker leave in another state.

The suites sweep apps of their own (not polyexp's): there the sweeper must be Hydra's basic sweeper,
for the basic and the joblib launchers. The integration suite starts each app as a subprocess, which
finds the sweeper through Hydra's plugin scan; the repository root goes on ``PYTHONPATH`` because the
scan does not see an editable install (see ``hydra_plugins/polyexp_sweeper``).
"""

import pytest
from conftest import ROOT
from hydra.core.plugins import Plugins
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.polyexp_sweeper import PolyexpSweeper


@pytest.fixture(autouse=True)
def _sweeper_registered():
    """As a Hydra app that imports polyexp has it: the plugin scan misses an editable install, and the
    suites' fixtures restore Hydra's singletons (its plugins among them) after every test."""
    Plugins.instance().register(PolyexpSweeper)


POLYEXP = ["hydra/sweeper=polyexp"]
LAUNCHERS = [("basic", POLYEXP), ("joblib", POLYEXP)]


@pytest.mark.parametrize(("launcher_name", "overrides"), LAUNCHERS)
class TestLauncherSuite(LauncherTestSuite):
    pass


@pytest.mark.parametrize(("launcher_name", "overrides"), [(name, [*o, "hydra.sweeper.max_batch_size=2"])
                                                          for name, o in LAUNCHERS])
class TestBatchedSweeperSuite(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [
    ({"defaults": [{"override hydra/launcher": launcher}, {"override hydra/sweeper": "polyexp"},
                   {"override hydra/job_logging": "disabled"}]},
     ["-m"])
    for launcher in ("basic", "joblib")
])
class TestIntegrationSuite(IntegrationTestSuite):
    @pytest.fixture(autouse=True)
    def _sweeper_on_path(self, monkeypatch):
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
