"""Progress: a live bar on a terminal, sparse log lines elsewhere."""

import io
import logging

from polyexp.run import progress
from polyexp.run.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place():
    stream = Terminal()
    bar = Progress(500, "job 2/3 training", "epochs", stream)
    for done in (1, 17, 250, 500):
        bar(done)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rjob 2/3 training [") and text.endswith("\n")
    assert "] 500/500 epochs" in text and "#" * 30 in text
    assert "\n" not in text[:-1]  # one line, redrawn with carriage returns


def test_elsewhere_only_sparse_log_lines(monkeypatch, caplog):
    stream = io.StringIO()
    caplog.set_level(logging.INFO, logger="polyexp.run.progress")
    quiet = Progress(500, "job", "epochs", stream)
    for done in range(1, 501):
        quiet(done)
    quiet.close()
    assert stream.getvalue() == "" and caplog.records == []  # a short training: no line at all

    monkeypatch.setattr(progress, "_LOG_SECONDS", 0.0)
    chatty = Progress(500, "job", "epochs", stream)
    chatty(250)
    chatty(500)
    assert [r.getMessage() for r in caplog.records] == ["job: 250/500 epochs (50%), 0s left"]


def test_work_that_ends_within_its_quiet_seconds_draws_no_bar_and_long_work_says_the_time_left(monkeypatch, caplog):
    terminal = Terminal()
    quick = Progress(60, "job scoring", "weight sets", terminal, quiet_seconds=30.0)
    for done in (10, 30, 60):
        quick(done)
    quick.close()
    assert terminal.getvalue() == ""

    clock = iter([0.0, 20.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="polyexp.run.progress")
    slow = Progress(100, "job scoring", "weight sets", io.StringIO())
    slow(25, total=120)  # 25 of 120 in 20 s: 95 more take 76 s
    assert [r.getMessage() for r in caplog.records] == ["job scoring: 25/120 weight sets (21%), 1m16s left"]
