"""TensorFlow without its start-up noise, and a job's log file without a full disk's.

Importing TensorFlow makes its C++ core write lines straight to file descriptor 2 (oneDNN, CUDA
probing, absl's "log messages before InitializeLog") that ``TF_CPP_MIN_LOG_LEVEL`` does not hide.
``import_tensorflow`` holds them back; they are shown if the import fails, or with ``verbose``::

    import_tensorflow(verbose=False)   # then `import keras` prints nothing
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from polyexp.core.errors import full_disk


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras, keeping what their C++ start-up writes to stderr out of sight."""
    if verbose or "tensorflow" in sys.modules:
        import keras
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)  # vectorisation fallbacks and retracing notes


class JobLogFile(logging.FileHandler):
    """The job's log file (Hydra's ``polyexp.log``), which skips the lines a full disk refuses: they are
    on stderr already, and logging's own report of each would be a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not full_disk(sys.exc_info()[1]):
            super().handleError(record)
