"""polyexp.run.stop: a signal stops the job wherever it lands, never cuts a held block in two, and decides
the command's exit status; what is still open is closed on the way out."""

import os
import signal

import pytest

from polyexp.run.stop import Stop, Terminated, interrupted, process_stop, terminated


@pytest.fixture
def stop():
    """A stop of its own with its SIGINT handler for one test, and Python's handlers again after it."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    fresh = Stop()
    fresh.on_signals({signal.SIGINT: interrupted, signal.SIGTERM: terminated})
    yield fresh
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


def test_a_signal_raises_where_it_lands_and_is_remembered(stop):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert isinstance(stop.requested(), KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C"):
        stop.check()  # raised again, as after a loss in a finaliser


def test_a_held_block_runs_to_its_end_and_the_stop_comes_after_it(stop):
    done = []
    with pytest.raises(KeyboardInterrupt), stop.held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("created")
        with stop.held():  # nested: only the outer block's end raises
            done.append("registered")
        done.append("outer end")
    assert done == ["created", "registered", "outer end"]
    assert stop._holding == 0


def test_no_signal_no_stop(stop):
    with stop.held():
        pass
    stop.check()
    assert stop.requested() is None
    assert process_stop() is process_stop() and process_stop() is not stop  # the process's own, one


def test_what_is_still_open_is_closed_on_the_way_out_the_latest_first(stop):
    closed = []

    def first(interrupted: bool) -> None:
        closed.append(("first", interrupted))

    def second(interrupted: bool) -> None:
        closed.append(("second", interrupted))
        stop.closed(second)

    stop.close_on_exit(first)
    stop.close_on_exit(second)
    stop.closed(first)  # its owner closed it
    stop.close_all(interrupted=True)
    stop.close_all(interrupted=False)  # nothing left: second said it was closed
    assert closed == [("second", True)]


@pytest.mark.parametrize(("ending", "status"), [
    (KeyboardInterrupt(), 130), (Terminated(143), 143), (SystemExit(1), 1), (SystemExit("a line"), 1),
    (SystemExit(None), 0), (SystemExit(0), 0), (RuntimeError("a bug"), 1),
])
def test_one_mapping_from_how_the_command_stopped_to_its_exit_status(stop, ending, status):
    assert stop.exit_status(ending) == status


def test_an_error_exit_after_a_ctrl_c_is_the_ctrl_c(stop):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.exit_status(SystemExit(1)) == 130  # Hydra made an error of the Ctrl-C: the Ctrl-C says why


def test_an_uninterrupted_write_ends_whole_and_a_clean_up_after_a_stop_goes_on(stop):
    done = []
    with pytest.raises(KeyboardInterrupt), stop.uninterrupted():
        os.kill(os.getpid(), signal.SIGINT)  # lands inside: raised once the write is whole
        done.append("written")
    assert done == ["written"]
    with stop.uninterrupted():  # the clean-up the Ctrl-C started: its writes are not cut, and it goes on
        done.append("cleaned up")
    assert done == ["written", "cleaned up"]
    with pytest.raises(KeyboardInterrupt), stop.held():  # held() still raises the earlier stop
        pass
