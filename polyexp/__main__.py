"""``python -m polyexp`` and the ``polyexp`` command. Ctrl-C stops it quietly (exit 130) from the first
moment, the imports included."""

import signal
import sys

from polyexp.run import stop


def main() -> None:
    stop.on_signals({signal.SIGINT: stop.interrupted})
    try:
        from polyexp.app import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli()


if __name__ == "__main__":
    main()
