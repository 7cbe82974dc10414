"""A job of the experiment: where it runs, its place in a sweep, and the report it leaves.

Every job writes ``polyexp_job.json`` into its output folder, finished, skipped or failed; the
sweep's parent run is summarised from these reports, so it also learns about jobs that failed
before they had an MLflow run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polyexp.core.files import write_text

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

    @property
    def label(self) -> str:
        if self.sweep is None:
            return "job"
        total = f"/{self.sweep.num_jobs}" if self.sweep.num_jobs else ""
        return f"job {self.number + 1}{total}"


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

    @property
    def selected_val_acc(self) -> float | None:
        """The job's validation score: what ranks the jobs of a sweep and what a sweeper optimises."""
        return self.summary.get("selected_val_acc")


def run_name(weighting: str, overrides: Sequence[str], swept_keys: Sequence[str] | None) -> str:
    """``exp alpha=2``: the weighting, then the overrides (in a sweep, only the swept ones)."""
    parts = [weighting]
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        unswept = swept_keys is not None and key not in swept_keys
        if key == "averaging" or key.startswith(("hydra.", "hydra/")) or unswept:
            continue
        parts.append(f"{key.removeprefix('averaging.')}={_short(value)}")
    return " ".join(parts)


def _short(value: str) -> str:
    """A sampled number (an Optuna trial's 7.180374727086953) to 6 significant digits; anything else as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.6g}" if "." in value and len(value) > 8 else value


def write_job_report(folder: Path, result: JobResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / JOB_REPORT, json.dumps(asdict(result), indent=1))


def read_job_report(path: Path) -> JobResult:
    return JobResult(**json.loads(path.read_text()))


