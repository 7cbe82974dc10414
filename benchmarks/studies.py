"""The studies docs/studies.md publishes, run by one command that writes their tables.

Each study is one polyexp sweep, run as a user runs it (``python -m polyexp ... -m``) in a folder of
its own with its own store; its jobs' ``summary.json`` (means over seeds with 95% t intervals) become
a Markdown table, written into the page between ``<!-- study:NAME:start -->`` and
``<!-- study:NAME:end -->`` with the command that wrote it::

    python benchmarks/studies.py --write docs/studies.md            # every study
    python benchmarks/studies.py schedules --work /tmp/studies      # one, printed, its runs kept

A study whose command, code and seeds are unchanged gives the same numbers (polyexp's determinism).
The text around a table claims only what the table's intervals show: a difference whose interval
holds 0 is "not shown apart".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each study: the overrides of its sweep. Every job keeps two EMAs and SWA from epoch 400 beside it.
IN_TRAINING = ["ema_decays=[0.99,0.999]", "swa_start=400"]
STUDIES: dict[str, list[str]] = {
    "schedules": ["seeds=30", "seed=1000", "schedule=constant,cosine,wsd", "schedule.decay_fraction=0.1,0.2",
                  "optimizer=sgd", *IN_TRAINING],
    "schedule_free": ["seeds=30", "seed=1000", "schedule=constant", "optimizer=schedule_free_adamw",
                      "optimizer.update=paper,keras", *IN_TRAINING],
}

COLUMNS = [  # (header, summary key): test accuracy, mean of the seeds [95% interval]
    ("last checkpoint", "last_test_acc"),
    ("average at the n selected on validation", "selected_test_acc"),
    ("gain over the last checkpoint (paired)", "selected_gain_vs_last"),
    ("EMA 0.999", "test_ema_0.999_acc"),
    ("SWA (from epoch 400)", "test_swa_acc"),
    ("schedule-free x", "test_schedule_free_x_acc"),
]


def command(study: str) -> str:
    return "python -m polyexp " + " ".join(f"'{o}'" if "[" in o else o for o in STUDIES[study]) + " -m"


def run(study: str, work: Path) -> list[dict]:
    """Run the study's sweep in ``work``; each job's run name and summary, in job order."""
    work.mkdir(parents=True, exist_ok=True)
    sweep_dir = work / "multirun" / study
    args = [sys.executable, "-m", "polyexp", *STUDIES[study], f"hydra.sweep.dir={sweep_dir}", "-m"]
    print("running:", command(study), flush=True)
    subprocess.run(args, cwd=work, check=True)
    jobs = []
    for report in sorted(sweep_dir.glob("*/polyexp_job.json"), key=lambda p: int(p.parent.name)):
        job = json.loads(report.read_text())
        summary = json.loads((report.parent / "summary.json").read_text())
        jobs.append({"name": job["run_name"], "summary": summary})
    return jobs


def interval(summary: dict, key: str, signed: bool = False) -> str:
    if key not in summary:
        return ""
    form = "+.3f" if signed else ".3f"
    low, high = summary[f"{key}_ci_low"], summary[f"{key}_ci_high"]
    text = f"{summary[key]:{form}} [{low:{form}}, {high:{form}}]"
    if signed and low <= 0 <= high:
        text += " (not shown apart from 0)"
    return text


def table(study: str, jobs: list[dict]) -> str:
    columns = [(h, k) for h, k in COLUMNS if any(k in j["summary"] for j in jobs)]
    seeds = {j["summary"].get("seeds") for j in jobs}
    lines = [f"Written by `python benchmarks/studies.py {study} --write docs/studies.md`, which runs:",
             "", "```sh", command(study), "```", "",
             f"Test accuracy, mean of {', '.join(map(str, sorted(s for s in seeds if s)))} seeds [95% interval]; "
             "n is selected on validation.", "",
             "| job | selected n | " + " | ".join(h for h, _ in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for job in jobs:
        s = job["summary"]
        cells = [interval(s, k, signed=k.endswith("gain_vs_last")) for _, k in columns]
        lines.append(f"| `{job['name']}` | {int(s['selected_n'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_block(page: Path, study: str, text: str) -> None:
    start, end = f"<!-- study:{study}:start -->", f"<!-- study:{study}:end -->"
    content = page.read_text()
    if start not in content:
        raise SystemExit(f"{page} has no {start} ... {end} block for the study {study!r}")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help=f"the studies to run, of {', '.join(STUDIES)} (default: all)")
    parser.add_argument("--write", type=Path, help="the page whose study blocks get the tables")
    parser.add_argument("--work", type=Path, help="where the sweeps run (default: a temporary folder)")
    args = parser.parse_args()
    unknown = [s for s in args.studies if s not in STUDIES]
    if unknown:
        parser.error(f"no study {', '.join(unknown)}: choose among {', '.join(STUDIES)}")
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        for study in args.studies or list(STUDIES):
            text = table(study, run(study, work / study))
            print(text)
            if args.write:
                write_block(args.write, study, text)


if __name__ == "__main__":
    main()
