"""polyexp's sweeper as Hydra finds plugins: in the ``hydra_plugins`` namespace.

The code is ``polyexp.sweep.sweeper``.
"""

from polyexp.sweep.sweeper import PluginAwareSweeper


class PolyexpSweeper(PluginAwareSweeper):
    """Hydra's basic sweep, aware of each plugin's fields and checked whole first (see ``polyexp.sweep.sweeper``)."""
