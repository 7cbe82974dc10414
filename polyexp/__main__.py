"""``python -m polyexp`` and the ``polyexp`` command. Its signals are handled from here on, the imports
included: Ctrl-C stops it quietly (exit 130), SIGTERM with its runs ended (143)."""

import signal
import sys

from polyexp.run.stop import interrupted, process_stop, terminated


def main() -> None:
    stop = process_stop()
    stop.on_signals({signal.SIGINT: interrupted, signal.SIGTERM: terminated})
    try:
        from polyexp.app import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli(stop)


if __name__ == "__main__":
    main()
