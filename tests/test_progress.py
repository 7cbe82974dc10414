"""Progress: a live bar on a terminal, sparse log lines elsewhere."""

import io
import logging

from polyexp.run import progress
from polyexp.run.progress import EpochProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place():
    stream = Terminal()
    bar = EpochProgress(500, "job 2/3 training", stream)
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
    quiet = EpochProgress(500, "job", stream)
    for done in range(1, 501):
        quiet(done)
    quiet.close()
    assert stream.getvalue() == "" and caplog.records == []  # a short training: no line at all

    monkeypatch.setattr(progress, "_LOG_SECONDS", 0.0)
    chatty = EpochProgress(500, "job", stream)
    chatty(250)
    chatty(500)
    assert [r.getMessage() for r in caplog.records] == ["job: epoch 250/500 (50%)"]
