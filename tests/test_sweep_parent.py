"""A sweep's parent run summarised from its jobs' reports, in process, on a real SQLite store."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from polyexp.run import tracking
from polyexp.run.job import JobResult, Sweep, write_job_report
from polyexp.sweep.parent import close_sweep
from polyexp.sweep.summary import rank


def job(name: str, number: int, val: float, selected_n: int = 8, seeds: int = 1, **fields) -> JobResult:
    summary = {"selected_n": selected_n, "selected_val_acc": val, "selected_test_acc": val - 0.01,
               "selected_gain_vs_last": 0.002}
    if seeds > 1:
        summary |= {f"{key}_ci_{end}": summary[key] + (0.01 if end == "high" else -0.01)
                    for key in ("selected_val_acc", "selected_test_acc", "selected_gain_vs_last")
                    for end in ("low", "high")}
    return JobResult("finished", name, [], run_id=f"run{number}", summary=summary,
                     test_average_acc=[val - 0.02, val - 0.01], test_rows=500, number=number, **fields)


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> tracking.Store:
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "polyexp", tmp_path)


def open_parent(store: tracking.Store, folder: Path, num_jobs: int) -> Sweep:
    run_id = store.client.create_run(store.experiment_id, run_name="sweep exp alpha=1,2").info.run_id
    return Sweep(folder, run_id, num_jobs, ("averaging.alpha",))


def test_the_command_prints_the_summarys_ranking_and_gets_the_summary_back(store, tmp_path, capsys):
    folder = tmp_path / "multirun"
    sweep = open_parent(store, folder, num_jobs=2)
    write_job_report(folder / "0", job("exp alpha=1", 1, 0.8, seeds=3))
    write_job_report(folder / "1", job("exp alpha=2", 2, 0.81, seeds=3))
    summary = close_sweep(sweep, store)
    out = capsys.readouterr().out
    assert out == summary.ranking  # the ranking, all of stdout, as the summary has it
    assert out.startswith("\nsweep: 2 jobs ranked on validation; ") and "(mean over seeds [95% CI])\n" in out
    assert out.index("exp alpha=2") < out.index("exp alpha=1")  # best validation first
    assert summary.status == "FINISHED" and [r.run_name for r in summary.reports] == ["exp alpha=1", "exp alpha=2"]
    assert (folder / "sweep_results.csv").read_text() == summary.results_csv
    parent = store.client.get_run(sweep.parent_run_id)
    assert parent.data.metrics == {"jobs_finished": 2, "jobs_skipped": 0, "jobs_failed": 0, "jobs_missing": 0}
    assert (folder / "sweep_comparison.png").stat().st_size > 0


def test_jobs_are_numbered_from_1_and_a_failure_is_forgotten_once_a_resume_finished_it(store, tmp_path, capsys):
    folder = tmp_path / "multirun"
    sweep = open_parent(store, folder, num_jobs=2)
    write_job_report(folder / "0", job("exp alpha=1", 1, 0.8))
    write_job_report(folder / "1", JobResult("failed", "exp alpha=2", [], error="interrupted (Ctrl-C)", number=2))
    close_sweep(sweep, store)
    parent = store.client.get_run(sweep.parent_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["polyexp.failed_jobs"] == "job 2 (exp alpha=2): interrupted (Ctrl-C)"
    rows = list(csv.DictReader((folder / "sweep_results.csv").read_text().splitlines()))
    assert [(r["job"], r["rank"], r["status"]) for r in rows] == [("1", "1", "finished"), ("2", "", "failed")]

    tracking.reopen_run(store.client, sweep.parent_run_id, {})  # the command again: job 2 runs and finishes
    write_job_report(folder / "1", job("exp alpha=2", 2, 0.81))
    close_sweep(sweep, store)
    parent = store.client.get_run(sweep.parent_run_id)
    assert parent.info.status == "FINISHED" and "polyexp.failed_jobs" not in parent.data.tags
    assert "sweep: 2 jobs ranked" in capsys.readouterr().out


def test_a_skipped_jobs_row_is_a_finished_ones_with_the_earlier_run_named(store, tmp_path, capsys):
    folder = tmp_path / "multirun"
    sweep = open_parent(store, folder, num_jobs=2)
    reused = {"run_id": "abc", "run_name": "exp alpha=2", "parent": "sweep exp alpha=2,4", "output_dir": "/o/1"}
    write_job_report(folder / "0", job("exp alpha=1", 1, 0.8))
    write_job_report(folder / "1", job("exp alpha=2", 2, 0.81, selected_n=8, reused=reused))
    close_sweep(sweep, store)
    rows = {r["run_name"]: r for r in csv.DictReader((folder / "sweep_results.csv").read_text().splitlines())}
    assert rows["exp alpha=2"]["selected_n"] == "8" and rows["exp alpha=2"]["reused_run_id"] == "abc"
    line = "exp alpha=2 is run abc (exp alpha=2) of sweep exp alpha=2,4; outputs: /o/1"
    assert f"  reused: {line}\n" in capsys.readouterr().out
    assert store.client.get_run(sweep.parent_run_id).data.tags["polyexp.reused_jobs"] == line


def test_jobs_that_tie_on_validation_share_a_place_and_a_line_names_them(store, tmp_path, capsys):
    ranked = rank([job("exp alpha=1", 1, 0.8), job("exp alpha=2", 2, 0.81), job("exp alpha=3", 3, 0.8),
                   job("exp alpha=4", 4, 0.79)])
    folder = tmp_path / "multirun"
    sweep = open_parent(store, folder, num_jobs=4)
    for i, result in enumerate(ranked):
        write_job_report(folder / str(i), result)
    close_sweep(sweep, store)
    out = capsys.readouterr().out
    rows = [line.split()[:3] for line in out.splitlines() if line.startswith("  ") and "exp alpha=" in line
            and "tie" not in line]
    assert rows == [["1", "exp", "alpha=2"], ["2=", "exp", "alpha=1"], ["2=", "exp", "alpha=3"],
                    ["4", "exp", "alpha=4"]]  # in job order within the tie
    assert "tie on validation" in out and "val 0.800: exp alpha=1, exp alpha=3" in out
    rows = list(csv.DictReader((folder / "sweep_results.csv").read_text().splitlines()))
    assert [(r["run_name"], r["rank"]) for r in rows] == [
        ("exp alpha=2", "1"), ("exp alpha=1", "2="), ("exp alpha=3", "2="), ("exp alpha=4", "4")]


def test_an_interrupted_sweep_counts_the_jobs_it_never_started(store, tmp_path, caplog):
    folder = tmp_path / "multirun"
    sweep = open_parent(store, folder, num_jobs=6)
    write_job_report(folder / "0", job("exp alpha=1", 1, 0.8))
    write_job_report(folder / "1", JobResult("failed", "exp alpha=2", [], error="interrupted (Ctrl-C)", number=2))
    with caplog.at_level("INFO"):
        close_sweep(sweep, store, interrupted=True)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep KILLED")]
    assert line.startswith("sweep KILLED: 1 finished, 0 skipped, 1 failed, 4 never started (of 6 jobs); summary in")
