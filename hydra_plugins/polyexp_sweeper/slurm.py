"""polyexp's SLURM launcher as Hydra finds plugins (``hydra/launcher=slurm``); the code is ``polyexp.sweep.slurm``.

It needs Hydra's submitit launcher (``pip install 'polyexp[submitit]'``); without it, nothing is defined here.
"""

try:
    from polyexp.sweep.slurm import SlurmLauncher
except ImportError:  # no hydra-submitit-launcher: hydra/launcher=slurm is not available, and Hydra says so
    pass
else:

    class PolyexpSlurmLauncher(SlurmLauncher):
        """Hydra's submitit SLURM launcher, with a checked submission and jobs that always end."""
