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
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each study: the overrides of its sweep. Every job keeps two EMAs and SWA from epoch 400 beside it.
IN_TRAINING = ["ema_decays=[0.99,0.999]", "swa_start=400"]
STUDIES: dict[str, list[str]] = {
    "schedules": ["seeds=30", "seed=1000", "schedule=constant,cosine,cyclic,wsd", "schedule.decay_fraction=0.1,0.2",
                  "optimizer=sgd", *IN_TRAINING],
    "schedule_free": ["seeds=30", "seed=1000", "schedule=constant", "optimizer=schedule_free_adamw",
                      "optimizer.update=paper,keras", *IN_TRAINING],
    "digits_cnn": ["data=digits", "model=cnn", "epochs=100", "seeds=30", "seed=1000", "schedule=constant,cosine,wsd",
                   "optimizer=sgd", "ema_decays=[0.99,0.999]", "swa_start=80"],
}

# Paired over seeds (the jobs of a study run the same seeds): (label, (job, what), (job, what)), a job named
# by a part of its run name, "what" one of: last (the last checkpoint), average (at the n selected on
# validation), or an in-training average (ema_0.999, swa, schedule_free_x).
COMPARISONS: dict[str, list[tuple[str, tuple[str, str], tuple[str, str]]]] = {
    "schedules": [
        ("constant rate, averaged, minus cosine's last checkpoint", ("constant", "average"), ("cosine", "last")),
        ("constant rate, averaged, minus cyclic's last checkpoint", ("constant", "average"), ("cyclic", "last")),
        ("wsd (decay 10%), last checkpoint, minus cosine's", ("decay_fraction=0.1", "last"), ("cosine", "last")),
        ("wsd (decay 20%), last checkpoint, minus cosine's", ("decay_fraction=0.2", "last"), ("cosine", "last")),
        ("constant rate, EMA 0.999, minus its average", ("constant", "ema_0.999"), ("constant", "average")),
    ],
    "schedule_free": [
        ("paper's update: x minus the last checkpoint (y)", ("update=paper", "schedule_free_x"),
         ("update=paper", "last")),
        ("x: paper's update minus Keras'", ("update=paper", "schedule_free_x"), ("update=keras", "schedule_free_x")),
        ("last checkpoint: paper's update minus Keras'", ("update=paper", "last"), ("update=keras", "last")),
    ],
    "digits_cnn": [
        ("constant rate, averaged, minus cosine's last checkpoint", ("constant", "average"), ("cosine", "last")),
        ("wsd, last checkpoint, minus cosine's", ("wsd", "last"), ("cosine", "last")),
        ("constant rate, EMA 0.999, minus its average", ("constant", "ema_0.999"), ("constant", "average")),
    ],
}

COLUMNS = [  # (header, summary key): test accuracy, mean of the seeds [95% interval]
    ("last checkpoint", "last_test_acc"),
    ("average at the n selected on validation", "selected_test_acc"),
    ("gain over the last checkpoint (paired)", "selected_gain_vs_last"),
    ("EMA 0.999", "test_ema_0.999_acc"),
    ("SWA", "test_swa_acc"),
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
        jobs.append({"name": job["run_name"], "summary": summary, "test_rows": job["test_rows"],
                     "per_seed": per_seed(report.parent, summary)})
    return jobs


def per_seed(folder: Path, summary: dict) -> dict[str, list[float]]:
    """Each seed's test accuracy, in seed order: the last checkpoint, the average at the selected n, and
    every in-training average."""
    rows = list(csv.DictReader((folder / "results.csv").read_text().splitlines()))
    seeds = sorted({int(r["seed"]) for r in rows})
    at = {(int(r["seed"]), int(r["n"])): r for r in rows}
    n = int(summary["selected_n"])
    values = {"last": [float(at[s, 1]["test_single_acc"]) for s in seeds],
              "average": [float(at[s, n]["test_average_acc"]) for s in seeds]}
    averages = folder / "averages.csv"
    if averages.exists():
        for r in sorted(csv.DictReader(averages.read_text().splitlines()), key=lambda r: int(r["seed"])):
            values.setdefault(r["average"], []).append(float(r["test_acc"]))
    return values


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of a - b over seeds and its 95% t interval (polyexp's own, as its tables print it)."""
    import numpy as np

    from polyexp.core.statistics import mean_ci

    estimate = mean_ci(np.asarray(a)[:, None] - np.asarray(b)[:, None])
    return float(estimate.mean[0]), float(estimate.low[0]), float(estimate.high[0])


def comparisons(study: str, jobs: list[dict]) -> list[str]:
    def find(part: str) -> dict:
        (job,) = [j for j in jobs if part in j["name"]]
        return job

    lines = []
    for label, (job_a, what_a), (job_b, what_b) in COMPARISONS.get(study, []):
        mean, low, high = paired(find(job_a)["per_seed"][what_a], find(job_b)["per_seed"][what_b])
        verdict = "not shown apart" if low <= 0 <= high else "shown apart"
        lines.append(f"| {label} | {mean:+.4f} [{low:+.4f}, {high:+.4f}] | {verdict} |")
    if not lines:
        return []
    return ["", "Paired over the seeds (difference of test accuracy, 95% t interval; \"not shown apart\": the "
            "interval holds 0):", "", "| comparison | difference | |", "|---|---|---|", *lines]


def interval(summary: dict, key: str, signed: bool = False) -> str:
    """A summary value as polyexp prints it (``0.807 [0.803, 0.810]``); a difference whose interval holds 0 says so."""
    from polyexp.run.outputs import summary_interval

    if key not in summary:
        return ""
    text = summary_interval(summary, key, signed)
    if signed and summary[f"{key}_ci_low"] <= 0 <= summary[f"{key}_ci_high"]:
        text += " (not shown apart from 0)"
    return text


def table(study: str, jobs: list[dict]) -> str:
    columns = [(h, k) for h, k in COLUMNS if any(k in j["summary"] for j in jobs)]
    seeds = sorted({tuple(j["summary"]["seeds"]) for j in jobs})
    if len(seeds) != 1:
        raise SystemExit(f"the jobs of {study} ran different seeds: {seeds}")
    (seeds,) = seeds
    lines = [f"Written by `python benchmarks/studies.py {study} --write docs/studies.md`, which runs:",
             "", "```sh", command(study), "```", "",
             f"Test accuracy ({jobs[0]['test_rows']} rows), mean of {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}) "
             "[95% t interval]; n is selected on validation; the gain is paired over seeds, from the last "
             "checkpoint scored as the averages are (with BatchNorm, its statistics recomputed too).", "",
             "| job | selected n | " + " | ".join(h for h, _ in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for job in jobs:
        s = job["summary"]
        cells = [interval(s, k, signed=k.endswith("gain_vs_last")) for _, k in columns]
        lines.append(f"| `{job['name']}` | {int(s['selected_n'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines + comparisons(study, jobs))


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
