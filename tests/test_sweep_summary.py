"""A sweep's summary made from hand-built job reports alone: no store, no files, no stdout."""

from __future__ import annotations

import csv
import math

from polyexp.run.job import JobResult
from polyexp.sweep.summary import SweepSummary, summarise

REUSED = {"run_id": "abc", "run_name": "exp alpha=3", "parent": "sweep exp alpha=3,4", "output_dir": "/o/3"}


def scored(name: str, number: int | None, val: float, status: str = "finished", ci: bool = False,
           **fields) -> JobResult:
    summary = {"selected_n": 8, "selected_val_acc": val, "selected_test_acc": val - 0.01,
               "selected_gain_vs_last": 0.002}
    if ci:
        summary |= {"selected_test_acc_ci_low": val - 0.02, "selected_test_acc_ci_high": val,
                    "selected_gain_vs_last_ci_low": -0.001, "selected_gain_vs_last_ci_high": 0.005}
    return JobResult(status, name, [], run_id=f"run{number}", summary=summary, test_average_acc=[0.5, val],
                     test_rows=500, number=number, **fields)


def failed(name: str, number: int | None, error: str = "boom") -> JobResult:
    return JobResult("failed", name, [], error=error, number=number)


def test_jobs_are_ordered_by_number_then_ranked_on_validation_with_ties_sharing_a_place():
    one, two, three, four = (scored("exp alpha=1", 1, 0.8), scored("exp alpha=2", 2, 0.81),
                             scored("exp alpha=3", 3, 0.8), scored("exp alpha=4", 4, 0.79))
    unnumbered, broken = scored("exp a", None, 0.9), failed("exp alpha=5", 5)
    given = [unnumbered, four, broken, three, one, two]
    summary = summarise(given, 6, interrupted=False)
    assert given == [unnumbered, four, broken, three, one, two]  # the caller's list is left as it was
    assert summary.reports == (one, two, three, four, broken, unnumbered)  # numbered first, a number-less job last
    assert summary.ranked == (unnumbered, two, one, three, four)  # the tie in job order
    assert summary.places == ("1", "2", "3=", "3=", "5")
    assert summary.failed == (broken,)
    assert [row["name"] for row in summary.plot_rows] == ["exp a", "exp alpha=2", "exp alpha=1", "exp alpha=3",
                                                          "exp alpha=4"]
    assert summary.plot_rows[1] == {"name": "exp alpha=2", "selected_val_acc": 0.81, "selected_test_acc": 0.8,
                                    "selected_test_acc_ci_low": summary.plot_rows[1]["selected_test_acc_ci_low"],
                                    "selected_test_acc_ci_high": summary.plot_rows[1]["selected_test_acc_ci_high"],
                                    "test_average_acc": [0.5, 0.81]}
    assert math.isnan(summary.plot_rows[1]["selected_test_acc_ci_low"])  # one seed: no interval to draw
    assert summary.plot_test_rows == 500


def test_the_status_is_killed_when_interrupted_failed_on_a_failure_or_a_missing_job_else_finished():
    ok, skipped, broken = (scored("exp alpha=1", 1, 0.8), scored("exp alpha=2", 2, 0.8, status="skipped"),
                           failed("exp alpha=3", 3))
    assert summarise([ok, skipped], 2, interrupted=False).status == "FINISHED"
    assert summarise([ok, skipped], None, interrupted=False).status == "FINISHED"  # no count: none missing
    assert summarise([ok, skipped], 3, interrupted=False).status == "FAILED"
    assert summarise([ok, skipped, broken], 3, interrupted=False).status == "FAILED"
    assert summarise([ok, skipped, broken], 5, interrupted=True).status == "KILLED"
    assert summarise([ok], 1, interrupted=True).status == "KILLED"
    assert summarise([], 2, interrupted=False).status == "FAILED"


def test_missing_jobs_never_started_when_interrupted_and_left_no_report_otherwise():
    reports = [scored("exp alpha=1", 1, 0.8), failed("exp alpha=2", 2, "interrupted (Ctrl-C)")]
    killed = summarise(reports, 6, interrupted=True)
    assert killed.missing == 4
    assert killed.outcome == "1 finished, 0 skipped, 1 failed, 4 never started (of 6 jobs)"
    assert killed.errors == ("sweep: job 2 (exp alpha=2) failed: interrupted (Ctrl-C)",)  # no line for the 4
    lost = summarise(reports, 6, interrupted=False)
    assert lost.outcome == "1 finished, 0 skipped, 1 failed, 4 left no report (of 6 jobs)"
    assert lost.errors == ("sweep: job 2 (exp alpha=2) failed: interrupted (Ctrl-C)",
                           "sweep: 4 of 6 jobs left no report (lost, or never started)")
    assert summarise(reports, None, interrupted=False).outcome == "1 finished, 0 skipped, 1 failed"
    assert summarise(reports, 1, interrupted=False).missing == 0  # more reports than jobs: none missing


def test_the_counts_become_metrics_and_failed_or_reused_jobs_tags():
    summary = summarise([scored("exp alpha=1", 1, 0.8), failed("exp alpha=2", 2, "out of memory"),
                         failed("exp b", None, "bad config"),
                         scored("exp alpha=3", 3, 0.7, status="skipped", reused=REUSED)], 5, interrupted=False)
    assert summary.counts == {"finished": 1, "skipped": 1, "failed": 2}
    assert list(summary.metrics.items()) == [("jobs_finished", 1), ("jobs_skipped", 1), ("jobs_failed", 2),
                                             ("jobs_missing", 1)]
    assert summary.tags == {
        "failed_jobs": "job 2 (exp alpha=2): out of memory\njob (exp b): bad config",
        "reused_jobs": "exp alpha=3 is run abc (exp alpha=3) of sweep exp alpha=3,4; outputs: /o/3"}
    assert summarise([scored("exp alpha=1", 1, 0.8)], 1, interrupted=False).tags == {
        "failed_jobs": "", "reused_jobs": ""}  # empty: close_sweep deletes a tag an earlier close left
    long = summarise([failed(f"exp alpha={i}", i, "x" * 100) for i in range(1, 100)], 99, interrupted=False)
    assert len(long.tags["failed_jobs"]) == 5000


def test_the_csv_has_a_row_per_job_the_ranked_ones_first():
    reports = [scored("exp alpha=1", 1, 0.8), failed("exp alpha=2", 2, 'bad "value", twice'),
               scored("exp alpha=3", 3, 0.81, ci=True, status="skipped", reused=REUSED)]
    rows = list(csv.reader(summarise(reports, 3, interrupted=False).results_csv.splitlines()))
    numbers = [f"selected_{key}{part}" for key in ("val_acc", "test_acc", "gain_vs_last")
               for part in ("", "_ci_low", "_ci_high")]
    assert rows[0] == ["job", "rank", "run_name", "status", "run_id", "trajectory", "selected_n", *numbers,
                       "error", "reused_run_id", "test_average_acc_1", "test_average_acc_2"]
    assert rows[1] == ["3", "1", "exp alpha=3", "skipped", "run3", "", "8", "0.81", "", "", "0.8",
                       "0.79", "0.81", "0.002", "-0.001", "0.005", "", "abc", "0.5", "0.81"]
    assert rows[2] == ["1", "2", "exp alpha=1", "finished", "run1", "", "8", "0.8", "", "", "0.79", "", "",
                       "0.002", "", "", "", "", "0.5", "0.8"]
    assert rows[3] == ["2", "", "exp alpha=2", "failed", "", "", "", *[""] * 9, 'bad "value", twice', ""]
    assert len(rows) == 4


def test_the_ranking_reads_as_the_command_prints_it():
    reports = [scored("exp alpha=1", 1, 0.8), scored("exp alpha=22", 2, 0.81, ci=True),
               scored("exp alpha=3", 3, 0.8, status="skipped", reused=REUSED), failed("exp alpha=4", 4)]
    assert summarise(reports, 4, interrupted=False).ranking == (
        "\n"
        "sweep: 3 jobs ranked on validation; test accuracy of each job's selected n (mean over seeds [95% CI])\n"
        "  rank job             n  val    test                    gain over the last checkpoint\n"
        "  1    exp alpha=22    8  0.810  0.800 [0.790, 0.810]    +0.002 [-0.001, +0.005]\n"
        "  2=   exp alpha=1     8  0.800  0.790                   +0.002\n"
        "  2=   exp alpha=3     8  0.800  0.790                   +0.002\n"
        "  = tie on validation, listed in job order (validation cannot choose between them): "
        "val 0.800: exp alpha=1, exp alpha=3\n"
        "  reused: exp alpha=3 is run abc (exp alpha=3) of sweep exp alpha=3,4; outputs: /o/3\n")


def test_one_job_is_one_job_and_one_seed_has_no_interval():
    assert summarise([scored("exp alpha=1", 1, 0.8)], 1, interrupted=False).ranking == (
        "\n"
        "sweep: 1 job ranked on validation; test accuracy of each job's selected n (one seed, no interval)\n"
        "  rank job            n  val    test                    gain over the last checkpoint\n"
        "  1    exp alpha=1    8  0.800  0.790                   +0.002\n")


def test_a_sweep_with_no_score_has_no_ranking_and_no_figure():
    summary = summarise([failed("exp alpha=1", 1), failed("exp b", None)], 2, interrupted=False)
    assert isinstance(summary, SweepSummary)
    assert summary.ranking == "" and summary.ranked == () and summary.places == ()
    assert summary.plot_rows == () and summary.plot_test_rows is None
    assert summary.results_csv.splitlines()[1:] == ["1,,exp alpha=1,failed,,,," + "," * 9 + "boom,",
                                                    ",,exp b,failed,,,," + "," * 9 + "boom,"]
