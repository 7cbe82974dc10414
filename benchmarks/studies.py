"""The studies docs/studies.md and docs/baselines.md publish, run by one command that writes their tables.

Each study is one polyexp sweep, run as a user runs it (``python -m polyexp ... -m``) in a folder of
its own with its own store; its jobs' ``summary.json`` (means over seeds with 95% t intervals), or
values per seed read from their ``results.csv`` and ``averages.csv``, become a Markdown table, written
into the study's page (``Study.page``; docs/studies.md unless named) between ``<!-- study:NAME:start -->``
and ``<!-- study:NAME:end -->`` with the command that wrote it::

    python benchmarks/studies.py --write docs/studies.md            # every study of that page
    python benchmarks/studies.py --write docs/studies.md docs/baselines.md   # every study
    python benchmarks/studies.py schedules --work /tmp/studies      # one, printed, its runs kept
    python benchmarks/studies.py calibration --write docs/baselines.md       # one, into its page

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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]

Comparison = tuple[str, tuple[str, str], tuple[str, str]]

COLUMNS = (  # (header, summary key): test accuracy, mean of the seeds [95% interval]
    ("last checkpoint", "last_test_acc"),
    ("average at the n selected on validation", "selected_test_acc"),
    ("gain over the last checkpoint (paired)", "selected_gain_vs_last"),
    ("EMA 0.999", "test_ema_0.999_acc"),
    ("SWA", "test_swa_acc"),
    ("schedule-free x", "test_schedule_free_x_acc"),
)


class Study(NamedTuple):
    """One published study: its sweep, the page its table goes into, its columns and paired comparisons.

    ``comparisons`` are paired over seeds (the jobs of a study run the same seeds): ``(label, (job, what),
    (job, what))``, a job named by a part of its run name, ``what`` a key of :func:`per_seed` (``last``,
    ``average`` at the n selected on validation, an in-training average such as ``ema_0.999``, ...).
    ``columns`` are summary keys; a study with a ``per_seed_sentence`` tabulates :func:`per_seed` values
    instead (its ``columns`` then name those), under that sentence (``{rows}``, ``{seeds}`` filled in).
    """

    overrides: tuple[str, ...]
    page: str = "docs/studies.md"
    comparisons: tuple[Comparison, ...] = ()
    columns: tuple[tuple[str, str], ...] = COLUMNS
    compared: str = "test accuracy"  # what the comparisons compare
    per_seed_sentence: str | None = None


# Every job keeps two EMAs and SWA from epoch 400 beside it.
IN_TRAINING = ("ema_decays=[0.99,0.999]", "swa_start=400")
# The BatchNorm studies (docs/baselines.md): recomputed or averaged statistics; the two jobs share one
# training (the trajectory cache's key leaves scoring settings out).
BATCHNORM = (
    ("recomputed minus averaged statistics: the average, mean over n = 1..10",
     ("recompute_bn=True", "average_over_n"), ("recompute_bn=False", "average_over_n")),
    ("recomputed minus averaged statistics: n = 1 (the last checkpoint)",
     ("recompute_bn=True", "average_1"), ("recompute_bn=False", "average_1")),
    ("recomputed minus averaged statistics: n = 10 (the average of all 10)",
     ("recompute_bn=True", "average_10"), ("recompute_bn=False", "average_10")),
)
BASELINES = "docs/baselines.md"

STUDIES: dict[str, Study] = {
    "schedules": Study(
        ("seeds=30", "seed=1000", "schedule=constant,cosine,cyclic,wsd", "schedule.decay_fraction=0.1,0.2",
         "optimizer=sgd", *IN_TRAINING),
        comparisons=(
            ("constant rate, averaged, minus cosine's last checkpoint", ("constant", "average"), ("cosine", "last")),
            ("constant rate, averaged, minus cyclic's last checkpoint", ("constant", "average"), ("cyclic", "last")),
            ("wsd (decay 10%), last checkpoint, minus cosine's", ("decay_fraction=0.1", "last"), ("cosine", "last")),
            ("wsd (decay 20%), last checkpoint, minus cosine's", ("decay_fraction=0.2", "last"), ("cosine", "last")),
            ("constant rate, EMA 0.999, minus its average", ("constant", "ema_0.999"), ("constant", "average")),
        )),
    "schedule_free": Study(
        ("seeds=30", "seed=1000", "schedule=constant", "optimizer=schedule_free_adamw", "optimizer.update=paper,keras",
         *IN_TRAINING),
        comparisons=(
            ("paper's update: x minus the last checkpoint (y)", ("update=paper", "schedule_free_x"),
             ("update=paper", "last")),
            ("x: paper's update minus Keras'", ("update=paper", "schedule_free_x"),
             ("update=keras", "schedule_free_x")),
            ("last checkpoint: paper's update minus Keras'", ("update=paper", "last"), ("update=keras", "last")),
        )),
    "digits_cnn": Study(
        ("data=digits", "model=cnn", "epochs=100", "seeds=30", "seed=1000", "schedule=constant,cosine,wsd",
         "optimizer=sgd", "ema_decays=[0.99,0.999]", "swa_start=80"),
        comparisons=(
            ("constant rate, averaged, minus cosine's last checkpoint", ("constant", "average"), ("cosine", "last")),
            ("wsd, last checkpoint, minus cosine's", ("wsd", "last"), ("cosine", "last")),
            ("constant rate, EMA 0.999, minus its average", ("constant", "ema_0.999"), ("constant", "average")),
        )),
    "batchnorm_last": Study(("data=digits", "model=cnn", "seeds=5", "recompute_bn=true,false"),
                            BASELINES, BATCHNORM),
    "batchnorm_strided": Study(("data=digits", "model=cnn", "seeds=5", "window=strided", "window.stride=25",
                                "recompute_bn=true,false"), BASELINES, BATCHNORM),
    "batchnorm_early": Study(("data=digits", "model=cnn", "epochs=60", "seeds=5", "window=strided", "window.stride=5",
                              "recompute_bn=true,false"), BASELINES, BATCHNORM),
    "greedy_soup": Study(
        ("data=digits", "model=cnn", "seeds=5", "averaging=greedy_soup,equal", *IN_TRAINING), BASELINES,
        comparisons=(
            ("greedy soup minus the last checkpoint", ("greedy_soup", "average"), ("greedy_soup", "last")),
            ("greedy soup minus the equal average", ("greedy_soup", "average"), ("equal", "average")),
            ("output ensemble minus the greedy soup", ("greedy_soup", "ensemble"), ("greedy_soup", "average")),
            ("EMA 0.99 minus the greedy soup", ("greedy_soup", "ema_0.99"), ("greedy_soup", "average")),
            ("EMA 0.999 minus the greedy soup", ("greedy_soup", "ema_0.999"), ("greedy_soup", "average")),
            ("SWA minus the greedy soup", ("greedy_soup", "swa"), ("greedy_soup", "average")),
            ("SWA minus the last checkpoint", ("greedy_soup", "swa"), ("greedy_soup", "last")),
        ),
        columns=(*COLUMNS[:3], ("output ensemble at its own n selected on validation", "ensemble_selected_test_acc"),
                 ("EMA 0.99", "test_ema_0.99_acc"), *COLUMNS[3:])),
    "calibration": Study(
        ("seeds=10",), BASELINES,
        comparisons=(
            ("the average of all 10 minus the last checkpoint", ("equal", "average_10_ece"), ("equal", "last_ece")),
            ("the output ensemble of all 10 minus the last checkpoint", ("equal", "ensemble_10_ece"),
             ("equal", "last_ece")),
            ("the output ensemble of all 10 minus the average of all 10", ("equal", "ensemble_10_ece"),
             ("equal", "average_10_ece")),
        ),
        columns=(("last checkpoint", "last_ece"), ("average of all 10", "average_10_ece"),
                 ("output ensemble of all 10", "ensemble_10_ece"),
                 ("average at the n selected on validation", "average_ece")),
        compared="test ECE",
        per_seed_sentence=(
            "Test expected calibration error ({rows} rows, 15 equal-width bins of confidence; lower is better), "
            "mean of {seeds} [95% t interval], from each seed's `results.csv`; the last 10 epochs averaged with "
            "equal weights.")),
}


def page(study: str) -> str:
    """The page whose block holds the study's table, as its command names it."""
    return STUDIES[study].page


def command(study: str) -> str:
    return "python -m polyexp " + " ".join(f"'{o}'" if "[" in o else o for o in STUDIES[study].overrides) + " -m"


def run(study: str, work: Path) -> Path:
    """Run the study's sweep in ``work``; its sweep folder."""
    work.mkdir(parents=True, exist_ok=True)
    sweep_dir = work / "multirun" / study
    args = [sys.executable, "-m", "polyexp", *STUDIES[study].overrides, f"hydra.sweep.dir={sweep_dir}", "-m"]
    print("running:", command(study), flush=True)
    subprocess.run(args, cwd=work, check=True)
    return sweep_dir


def jobs_of(sweep_dir: Path) -> list[dict]:
    """Each job of a sweep folder: its run name, summary, test rows and values per seed, in job order."""
    jobs = []
    for report in sorted(sweep_dir.glob("*/polyexp_job.json"), key=lambda p: int(p.parent.name)):
        job = json.loads(report.read_text())
        summary = json.loads((report.parent / "summary.json").read_text())
        jobs.append({"name": job["run_name"], "summary": summary, "test_rows": job["test_rows"],
                     "per_seed": per_seed(report.parent, summary)})
    return jobs


def per_seed(folder: Path, summary: dict) -> dict[str, list[float]]:
    """Each seed's test accuracy, in seed order: the last checkpoint (``last``), the average at the selected
    n (``average``), the output ensemble at its selected n (``ensemble``), every in-training average (by
    its name); the average of the n latest (``average_N``, for every n: n = 1 is the last checkpoint scored
    as the averages are) and the mean over n = 1..K of the average (``average_over_n``); and the test ECE of
    each, ``..._ece`` (the output ensemble of the n latest: ``ensemble_N_ece``)."""
    rows = list(csv.DictReader((folder / "results.csv").read_text().splitlines()))
    seeds = sorted({int(r["seed"]) for r in rows})
    at = {(int(r["seed"]), int(r["n"])): r for r in rows}
    ns = sorted({int(r["n"]) for r in rows})
    n, n_ensemble = int(summary["selected_n"]), int(summary.get("ensemble_selected_n", summary["selected_n"]))

    def column(key: str, n: int) -> list[float]:
        return [float(at[s, n][key]) for s in seeds]

    values = {"last": column("test_single_acc", 1), "average": column("test_average_acc", n),
              "ensemble": column("test_ensemble_acc", n_ensemble),
              "average_over_n": [sum(float(at[s, k]["test_average_acc"]) for k in ns) / len(ns) for s in seeds],
              "last_ece": column("test_single_ece", 1), "average_ece": column("test_average_ece", n),
              "ensemble_ece": column("test_ensemble_ece", n_ensemble)}
    for k in ns:
        values[f"average_{k}"] = column("test_average_acc", k)
        values[f"average_{k}_ece"] = column("test_average_ece", k)
        values[f"ensemble_{k}_ece"] = column("test_ensemble_ece", k)
    averages = folder / "averages.csv"
    if averages.exists():
        for r in sorted(csv.DictReader(averages.read_text().splitlines()), key=lambda r: int(r["seed"])):
            values.setdefault(r["average"], []).append(float(r["test_acc"]))
            values.setdefault(f"{r['average']}_ece", []).append(float(r["test_ece"]))
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
    for label, (job_a, what_a), (job_b, what_b) in STUDIES[study].comparisons:
        mean, low, high = paired(find(job_a)["per_seed"][what_a], find(job_b)["per_seed"][what_b])
        verdict = "not shown apart" if low <= 0 <= high else "shown apart"
        lines.append(f"| {label} | {mean:+.4f} [{low:+.4f}, {high:+.4f}] | {verdict} |")
    if not lines:
        return []
    return ["", f"Paired over the seeds (difference of {STUDIES[study].compared}, 95% t interval; "
            "\"not shown apart\": the interval holds 0):", "", "| comparison | difference | |", "|---|---|---|",
            *lines]


def interval(summary: dict, key: str, signed: bool = False) -> str:
    """A summary value as polyexp prints it (``0.807 [0.803, 0.810]``); a difference whose interval holds 0 says so."""
    from polyexp.run.outputs import summary_interval

    if key not in summary:
        return ""
    text = summary_interval(summary, key, signed)
    if signed and summary[f"{key}_ci_low"] <= 0 <= summary[f"{key}_ci_high"]:
        text += " (not shown apart from 0)"
    return text


def seed_interval(values: list[float]) -> str:
    """Values per seed as their mean and 95% t interval (polyexp's), to four decimals: ``0.0625 [0.0555, 0.0695]``."""
    import numpy as np

    from polyexp.core.statistics import mean_ci

    estimate = mean_ci(np.asarray(values)[:, None])
    return f"{estimate.mean[0]:.4f} [{estimate.low[0]:.4f}, {estimate.high[0]:.4f}]"


def table(study: str, jobs: list[dict]) -> str:
    seeds = sorted({tuple(j["summary"]["seeds"]) for j in jobs})
    if len(seeds) != 1:
        raise SystemExit(f"the jobs of {study} ran different seeds: {seeds}")
    (seeds,) = seeds
    lines = [f"Written by `python benchmarks/studies.py {study} --write {page(study)}`, which runs:",
             "", "```sh", command(study), "```", ""]
    seed_text = f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]})"
    spec = STUDIES[study]
    if spec.per_seed_sentence is not None:
        columns = spec.columns
        lines += [spec.per_seed_sentence.format(rows=jobs[0]["test_rows"], seeds=seed_text), "",
                  "| job | selected n | " + " | ".join(h for h, _ in columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for job in jobs:
            cells = [seed_interval(job["per_seed"][what]) for _, what in columns]
            lines.append(f"| `{job['name']}` | {int(job['summary']['selected_n'])} | " + " | ".join(cells) + " |")
        return "\n".join(lines + comparisons(study, jobs))
    columns = [(h, k) for h, k in spec.columns if any(k in j["summary"] for j in jobs)]
    lines += [f"Test accuracy ({jobs[0]['test_rows']} rows), mean of {seed_text} "
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
    parser.add_argument("studies", nargs="*", help=f"the studies to run, of {', '.join(STUDIES)} (default: all, "
                        "or with --write, every study of the pages named)")
    all_pages = ", ".join(sorted({page(s) for s in STUDIES}))
    parser.add_argument("--write", type=Path, nargs="+", metavar="PAGE",
                        help=f"the pages whose study blocks get the tables (of {all_pages}); each study is "
                        "written into its own page")
    parser.add_argument("--work", type=Path, help="where the sweeps run (default: a temporary folder)")
    args = parser.parse_args()
    unknown = [s for s in args.studies if s not in STUDIES]
    if unknown:
        parser.error(f"no study {', '.join(unknown)}: choose among {', '.join(STUDIES)}")
    pages = {path.resolve(): path for path in args.write or []}
    known = {(ROOT / page(s)).resolve() for s in STUDIES}
    if set(pages) - known:
        parser.error(f"no study is written into {', '.join(str(pages[p]) for p in set(pages) - known)}")
    studies = args.studies or [s for s in STUDIES if not pages or (ROOT / page(s)).resolve() in pages]
    elsewhere = [s for s in studies if pages and (ROOT / page(s)).resolve() not in pages]
    if elsewhere:
        parser.error("; ".join(f"{s} is written into {page(s)}" for s in elsewhere))
    for study in studies if pages else []:  # before hours of sweeps, not after
        if f"<!-- study:{study}:start -->" not in (ROOT / page(study)).read_text():
            parser.error(f"{page(study)} has no <!-- study:{study}:start --> ... <!-- study:{study}:end --> block")
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        for study in studies:
            text = table(study, jobs_of(run(study, work / study)))
            print(text)
            if pages:
                write_block(ROOT / page(study), study, text)


if __name__ == "__main__":
    main()
