"""polyexp.run.stop: a signal stops the job wherever it lands, and never cuts a held block in two."""

import os
import signal

import pytest

from polyexp.run import stop


@pytest.fixture
def handlers():
    """polyexp's SIGINT handler for one test, and Python's again after it."""
    before = signal.getsignal(signal.SIGINT)
    stop.on_signals({signal.SIGINT: stop.interrupted})
    yield
    signal.signal(signal.SIGINT, before)
    stop._requested = None
    stop._raised.clear()


def test_a_signal_raises_where_it_lands_and_is_remembered(handlers):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert isinstance(stop.requested(), KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C"):
        stop.check()  # raised again, as after a loss in a finaliser


def test_a_held_block_runs_to_its_end_and_the_stop_comes_after_it(handlers):
    done = []
    with pytest.raises(KeyboardInterrupt), stop.held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("created")
        with stop.held():  # nested: only the outer block's end raises
            done.append("registered")
        done.append("outer end")
    assert done == ["created", "registered", "outer end"]
    assert stop._holding == 0


def test_no_signal_no_stop(handlers):
    with stop.held():
        pass
    stop.check()
    assert stop.requested() is None
