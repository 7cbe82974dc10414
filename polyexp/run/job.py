"""A job: where it runs, its place in a sweep, and the report it leaves.

Every job writes ``polyexp_job.json`` into its output folder once, finished, skipped or failed: the
runner a finished job's (logged with its run, what a later skipped job reuses), ``polyexp.task`` a
skipped or failed job's. The sweep's parent run is summarised from these reports, so it also learns
about jobs that failed before they had an MLflow run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polyexp.core.averaging import AVERAGINGS
from polyexp.core.files import write_text
from polyexp.core.registry import Affects
from polyexp.core.settings import SETTINGS
from polyexp.run.command_line import Argument, CommandLine, parse
from polyexp.run.secrets import redacted
from polyexp.run.stop import Stop, process_stop

JOB_REPORT = "polyexp_job.json"


@dataclass(frozen=True)
class Sweep:
    """What the jobs of a multirun share: written by ``polyexp.sweep.parent`` before they start."""

    folder: Path
    parent_run_id: str
    num_jobs: int | None  # None when the sweeper cannot tell in advance
    swept_keys: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """Where a job runs: its output folder, the launch folder and its place in a sweep."""

    output_dir: Path
    launch_dir: Path
    overrides: tuple[str, ...] = ()
    sweep: Sweep | None = None
    number: int = 0
    workers: int = 1  # jobs running side by side on this machine
    stop: Stop = field(default_factory=process_stop, compare=False, repr=False)  # what stops it: its process's

    @property
    def position(self) -> int | None:
        """The job's place in its sweep, from 1 (Hydra counts from 0); None outside a sweep."""
        return None if self.sweep is None else self.number + 1

    @property
    def label(self) -> str:
        if self.sweep is None:
            return "job"
        total = f"/{self.sweep.num_jobs}" if self.sweep.num_jobs else ""
        return f"job {self.position}{total}"


@dataclass
class JobResult:
    """A job's outcome, as the sweep summary reads it from ``polyexp_job.json``."""

    status: str  # finished | skipped | failed
    run_name: str
    overrides: list[str]
    run_id: str | None = None
    trajectory: str | None = None  # trained | reused
    summary: dict[str, float] = field(default_factory=dict)  # selection on validation, headline numbers
    test_average_acc: list[float] = field(default_factory=list)  # mean over seeds, per n
    test_rows: int | None = None
    error: str | None = None
    number: int | None = None  # the job's place in its sweep, from 1
    reused: dict[str, str] | None = None  # a skipped job's earlier run: run_id, run_name, parent, output_dir

    @property
    def selected_val_acc(self) -> float | None:
        """The job's validation score: what ranks the jobs of a sweep and what a sweeper optimises."""
        return self.summary.get("selected_val_acc")


# Overrides that never change a job's numbers (Hydra's, and the settings marked so: where to log, the
# cache, threads): they name neither a run nor a sweep.
NOT_NAMING = ("hydra.", "hydra/", *(p.name for p in SETTINGS if p.affects is Affects.NOTHING))


def naming(command: CommandLine) -> list[Argument]:
    """The overrides that name a run: those that change a number (not :data:`NOT_NAMING`)."""
    return [argument for argument in command if not argument.key.startswith(NOT_NAMING)]


def override_words(command: CommandLine) -> list[str]:
    """Overrides as a name reads them: the averaging's option and its fields by their own names.

    ``seeds=3 averaging=exp averaging.alpha=2`` -> ``["seeds=3", "exp", "alpha=2"]``; the overrides
    that change no number (:data:`NOT_NAMING`) are left out.
    """
    words = []
    for argument in naming(command):
        value = _short(argument.value)
        key = argument.key
        words.append(value if key == AVERAGINGS.group else f"{key.removeprefix(AVERAGINGS.group + '.')}={value}")
    return words


def run_name(averaging: str, overrides: Sequence[str], swept_keys: Sequence[str] | None) -> str:
    """``exp alpha=2``: the averaging, then the overrides (in a sweep, only the swept ones)."""
    command = parse(overrides)
    shown = [a for a in command if a.key != AVERAGINGS.group and (swept_keys is None or a.key in swept_keys)]
    return " ".join([averaging, *override_words(CommandLine(tuple(shown)))])


def _short(value: str) -> str:
    """A sampled number (an Optuna trial's 7.180374727086953) to 6 significant digits; anything else as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.6g}" if "." in value and len(value) > 8 else value


def write_job_report(folder: Path, result: JobResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = asdict(result)
    report["overrides"] = redacted(report["overrides"])
    report["error"] = redacted(report["error"])
    write_text(folder / JOB_REPORT, json.dumps(report, indent=1))


def read_job_report(path: Path) -> JobResult:
    return JobResult(**json.loads(path.read_text()))


