"""polyexp's sweeper as Hydra finds plugins: in the ``hydra_plugins`` namespace.

Importing this module registers ``hydra/sweeper=polyexp`` for any Hydra app; Hydra's plugin scan
imports it at start-up in a regular install. An editable install (``pip install -e``) hides it from
the scan (setuptools' editable finder is not a folder ``pkgutil`` can list), so there the sweeper is
found only when the repository root is on ``sys.path`` (running from it, or ``PYTHONPATH``) or once
something imports this module; ``python -m polyexp`` always does. The code is ``polyexp.sweep.sweeper``.
"""

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore

from polyexp.sweep.sweeper import PluginAwareSweeper


class PolyexpSweeper(PluginAwareSweeper):
    """Hydra's basic sweep, aware of each plugin's fields and checked whole first (see ``polyexp.sweep.sweeper``)."""


@dataclass
class PolyexpSweeperConf:
    _target_: str = "hydra_plugins.polyexp_sweeper.PolyexpSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(group="hydra/sweeper", name="polyexp", node=PolyexpSweeperConf, provider="polyexp")
