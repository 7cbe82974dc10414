"""A sweep's summary, a pure function of its jobs' reports: what closing the sweep logs, writes and prints.

:func:`summarise` ranks the jobs on their validation score and makes, as text and numbers, everything
``polyexp.sweep.parent.close_sweep`` then puts somewhere: the ranking the command prints, the rows of
``sweep_results.csv`` and of ``sweep_comparison.png``, the parent run's status, metrics and tags, and
the lines it logs. Nothing here touches MLflow, a file or stdout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from polyexp.run.job import JobResult
from polyexp.run.outputs import csv_text, summary_interval

STATUSES = ("finished", "skipped", "failed")  # a job report's statuses, in the order counts name them


@dataclass(frozen=True)
class SweepSummary:
    """A sweep's summary, made by :func:`summarise`."""

    reports: tuple[JobResult, ...]  # in job order (those without a number last, by name)
    ranked: tuple[JobResult, ...]  # the jobs with a validation score, best first
    places: tuple[str, ...]  # each ranked job's place: 1, 2=, 2=, 4
    failed: tuple[JobResult, ...]
    num_jobs: int | None  # None when the sweeper could not tell in advance
    missing: int  # jobs that left no report: lost, or never started
    counts: Mapping[str, int]  # reports per status: finished, skipped, failed
    status: str  # the parent run's: KILLED, FAILED or FINISHED
    errors: tuple[str, ...]  # the lines to log as errors: each failed job, the missing ones
    ranking: str  # the ranking as the command prints it; empty when no job has a score
    results_csv: str  # sweep_results.csv
    plot_rows: tuple[dict[str, Any], ...]  # sweep_comparison.png's jobs (none: no figure)
    plot_test_rows: int | None  # the test rows behind one accuracy point, for the figure's axis
    metrics: Mapping[str, int]  # jobs_finished, jobs_skipped, jobs_failed, jobs_missing
    tags: Mapping[str, str]  # failed_jobs, reused_jobs: empty when there are none (the tag goes)
    outcome: str  # the last line's count: "1 finished, 0 skipped, 1 failed, 4 never started (of 6 jobs)"


def summarise(reports: Sequence[JobResult], num_jobs: int | None, interrupted: bool) -> SweepSummary:
    """Summarise a sweep of ``num_jobs`` jobs (None: unknown) from the reports its jobs left, in any order."""
    reports = sorted(reports, key=lambda r: (r.number is None, r.number or 0, r.run_name))
    ranked = rank(reports)
    failed = [r for r in reports if r.status == "failed"]
    missing = max(0, (num_jobs or 0) - len(reports))
    errors = [f"sweep: {job_label(r)} ({r.run_name}) failed: {r.error}" for r in failed]
    if missing and not interrupted:
        errors.append(f"sweep: {missing} of {num_jobs} jobs left no report (lost, or never started)")
    counts = {status: sum(r.status == status for r in reports) for status in STATUSES}
    outcomes = [f"{v} {k}" for k, v in counts.items()]
    if missing:
        outcomes.append(f"{missing} never started" if interrupted else f"{missing} left no report")
    return SweepSummary(
        reports=tuple(reports), ranked=tuple(ranked), places=tuple(places(ranked)), failed=tuple(failed),
        num_jobs=num_jobs, missing=missing, counts=counts,
        status="KILLED" if interrupted else "FAILED" if failed or missing else "FINISHED",
        errors=tuple(errors), ranking=ranking_text(ranked), results_csv=_table(reports, ranked),
        plot_rows=tuple(_plot_row(r) for r in ranked),
        plot_test_rows=next((r.test_rows for r in ranked if r.test_rows), None),
        metrics={f"jobs_{k}": v for k, v in counts.items()} | {"jobs_missing": missing},
        tags={"failed_jobs": "\n".join(f"{job_label(r)} ({r.run_name}): {r.error}" for r in failed)[:5000],
              "reused_jobs": "\n".join(reused_line(r) for r in reports if r.reused)[:5000]},
        outcome=", ".join(outcomes) + (f" (of {num_jobs} jobs)" if num_jobs else ""),
    )


def job_label(result: JobResult) -> str:
    return f"job {result.number}" if result.number is not None else "job"


def reused_line(result: JobResult) -> str:
    """``exp alpha=2 is run 3f2a... (exp alpha=2) of sweep exp alpha=1,2; outputs: multirun/.../1``."""
    reused = result.reused or {}
    return (f"{result.run_name} is run {reused.get('run_id')} ({reused.get('run_name')}) of "
            f"{reused.get('parent') or 'a single run'}; outputs: {reused.get('output_dir') or '?'}")


def rank(reports: Sequence[JobResult]) -> list[JobResult]:
    """The jobs with a validation score, best first (what the sweep selects on: validation only); jobs
    that tie keep their order (the job order)."""
    return sorted((r for r in reports if r.selected_val_acc is not None), key=lambda r: -r.selected_val_acc)


def places(ranked: Sequence[JobResult]) -> list[str]:
    """Each ranked job's place: ``1``, ``2``, ... with ties sharing one, marked ``=`` (``2=``, ``2=``, ``4``)."""
    scores = [r.selected_val_acc for r in ranked]
    return [f"{1 + sum(other > score for other in scores)}{'=' if scores.count(score) > 1 else ''}"
            for score in scores]


def ties(ranked: Sequence[JobResult]) -> list[str]:
    """One line per validation score that several jobs share: ``val 0.810: exp alpha=1, exp alpha=2``."""
    scores = [r.selected_val_acc for r in ranked]
    shared = sorted({score for score in scores if scores.count(score) > 1}, reverse=True)
    return [f"val {score:.3f}: " + ", ".join(r.run_name for r in ranked if r.selected_val_acc == score)
            for score in shared]


def ranking_text(ranked: Sequence[JobResult]) -> str:
    """The sweep's summary table as the command prints it: jobs ranked on validation, with their test
    numbers (empty for none)."""
    if not ranked:
        return ""
    width = max(len(r.run_name) for r in ranked)
    jobs = f"{len(ranked)} job{'s' if len(ranked) != 1 else ''}"
    intervals = any(math.isfinite(r.summary.get("selected_test_acc_ci_low", math.nan)) for r in ranked)
    seeds = "mean over seeds [95% CI]" if intervals else "one seed, no interval"
    lines = ["", f"sweep: {jobs} ranked on validation; test accuracy of each job's selected n ({seeds})",
             f"  {'rank':<5}{'job':<{width + 2}}{'n':>3}  {'val':<7}{'test':<24}gain over the last checkpoint"]
    lines += [f"  {place:<5}{r.run_name:<{width + 2}}{int(r.summary['selected_n']):>3}  "
              f"{r.summary['selected_val_acc']:<7.3f}{summary_interval(r.summary, 'selected_test_acc'):<24}"
              f"{summary_interval(r.summary, 'selected_gain_vs_last', True)}"
              for place, r in zip(places(ranked), ranked, strict=True)]
    lines += [f"  = tie on validation, listed in job order (validation cannot choose between them): {line}"
              for line in ties(ranked)]
    lines += [f"  reused: {reused_line(r)}" for r in ranked if r.reused]
    return "\n".join(lines) + "\n"


def _plot_row(result: JobResult) -> dict[str, Any]:
    s = result.summary
    return {"name": result.run_name, "selected_val_acc": s["selected_val_acc"],
            **{f"selected_test_acc{p}": s.get(f"selected_test_acc{p}", float("nan"))
               for p in ("", "_ci_low", "_ci_high")},
            "test_average_acc": result.test_average_acc}


def _table(reports: Sequence[JobResult], ranked: Sequence[JobResult]) -> str:
    """``sweep_results.csv``: one row per job, the ranked ones first, best first, then the others in job order."""
    order = {id(r): i for i, r in enumerate(ranked)}
    place = dict(zip(order, places(ranked), strict=True))
    k = max((len(r.test_average_acc) for r in reports), default=0)
    numbers = [f"{key}{part}" for key in ("selected_val_acc", "selected_test_acc", "selected_gain_vs_last")
               for part in ("", "_ci_low", "_ci_high")]
    header = ["job", "rank", "run_name", "status", "run_id", "trajectory", "selected_n", *numbers, "error",
              "reused_run_id", *(f"test_average_acc_{n}" for n in range(1, k + 1))]
    return csv_text(header, [  # rows made here: a generator would be run by csv_text, back in this module
        [r.number if r.number is not None else "", place.get(id(r), ""), r.run_name, r.status, r.run_id or "",
         r.trajectory or "", r.summary.get("selected_n", ""), *(r.summary.get(key, "") for key in numbers),
         r.error or "", (r.reused or {}).get("run_id", ""), *r.test_average_acc]
        for r in sorted(reports, key=lambda r: order.get(id(r), len(order)))])
