"""``python -m polyexp`` and the ``polyexp`` command. Its signals are handled from here on, the imports
included: Ctrl-C stops it quietly (exit 130), SIGTERM with its runs ended (143)."""

import signal
import sys

from polyexp.run import stop


def main() -> None:
    stop.on_signals({signal.SIGINT: stop.interrupted, signal.SIGTERM: stop.terminated})
    try:
        from polyexp.app import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli()


if __name__ == "__main__":
    main()
