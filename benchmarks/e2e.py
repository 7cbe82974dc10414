"""End to end: what a job costs beyond what it computes, through the real CLI.

    python benchmarks/e2e.py                 # 3 repeats of every case (about 10 min on 2 cores)
    python benchmarks/e2e.py --repeats 5
    python benchmarks/e2e.py --quick         # 1 repeat, a 4-job sweep on 2 workers: a smoke run

Every case is a fresh ``python`` process in a fresh folder, its trajectory cache empty; the cases
are interleaved, one repeat of each per round, and every number printed is a median over rounds:

  import floor    a bare process importing exactly the modules the default job ends up with, in
                  the order it imported them, and nothing else: what the job cannot avoid paying
  default job     ``python -m polyexp``, its store (``mlflow.db``) already made by an earlier job
  fresh store     the same job as the first command a new user runs: no store yet
  1-job sweep     ``averaging=exp averaging.alpha=1 hydra/launcher=joblib hydra.launcher.n_jobs=W -m``
  16-job sweep    the same with ``averaging.alpha=range(1,17)``: 16 jobs sharing one training

The breakdown runs the default job once per round inside one process: the import floor is imported
first (timed: "imports"), then the job runs with a wall clock around the functions of each phase,
each phase's time its own, without the phases it calls: store (opening it, looking for a finished
run), data, train (with the trajectory cache), score, outputs (files), plots (drawing and writing
the figures), logging (every MLflow client call after the store is open) and other (Hydra, config
checks, printing: the job's time less the phases). Peak memory is the resident set's peak of the
process (``getrusage``), as ``/usr/bin/time -v`` reports it.

Targets: the default job within 1.5 s of the import floor; the 16-job sweep within 2x the 1-job
sweep; the default job's peak memory under 786 MiB (the seed procedure's).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
MIB = 1024  # ru_maxrss is in KiB on Linux
TARGET_GAP_S, TARGET_SWEEP_RATIO, TARGET_PEAK_MIB = 1.5, 2.0, 786

# phase: the functions whose time counts for it, as (module, attribute path, or "*" for every function)
PHASES: dict[str, list[tuple[str, str]]] = {
    "store": [("polyexp.run.tracking", "open_store"), ("polyexp.run.resume", "finished_run")],
    "data": [("polyexp.core.settings", "Plan.load_data")],
    "train": [("polyexp.core.training", "train"), ("polyexp.run.trajectory_cache", "TrajectoryCache.fetch")],
    "score": [("polyexp.core.outcome", "prepare_training"), ("polyexp.core.outcome", "outcome_of")],
    "outputs": [("polyexp.run.outputs", "write_outputs")],
    "plots": [("polyexp.run.plots", "*"), ("polyexp.run.outputs", "write_png")],
    "logging": [("mlflow.tracking.client", "MlflowClient.*")],
}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command to its end: (wall seconds, peak resident MiB, output); exit on failure."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({process.returncode}):\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss / MIB, text


def import_all(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a module that imports only as a side effect of another
            continue


def child(mode: str, modules_file: Path, out: Path, argv: list[str]) -> None:
    """``--child list``: run the job, then write the modules it imported. ``--child floor``: import
    them, nothing else. ``--child profile``: import them (timed), then run the job with its phases clocked."""
    if mode == "list":
        sys.argv = ["polyexp", *argv]
        from polyexp.app import cli

        try:
            cli()
        finally:
            modules = [name for name in sys.modules if name != "__main__" and not name.startswith("__mp_")]
            modules_file.write_text("\n".join(modules))
        return
    modules = modules_file.read_text().split()
    started = time.perf_counter()
    saved = os.dup(2)
    with open(os.devnull, "w") as quiet:
        os.dup2(quiet.fileno(), 2)  # TensorFlow's C++ start-up lines, as the job hides them
        try:
            import_all(modules)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    imports = time.perf_counter() - started
    if mode == "floor":
        return
    sys.argv = ["polyexp", *argv]
    from polyexp.app import cli

    phases = clock_phases()
    started = time.perf_counter()
    cli()
    job = time.perf_counter() - started
    out.write_text(json.dumps({"imports": imports, **phases, "other": job - sum(phases.values())}))


def clock_phases() -> dict[str, float]:
    """Wrap every function of ``PHASES`` in a wall clock, wherever it is bound; the times fill in as
    the job runs. A phase's time excludes the phases it calls; MLflow calls inside "store" stay there."""
    own = {phase: 0.0 for phase in PHASES}
    stack: list[list] = []  # [phase, time spent in phases it called]

    def clocked(phase: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: object, **kwargs: object) -> object:
            if stack and (stack[-1][0] == phase or (stack[-1][0] == "store" and phase == "logging")):
                return function(*args, **kwargs)
            stack.append([phase, 0.0])
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                _, inner = stack.pop()
                own[phase] += elapsed - inner
                if stack:
                    stack[-1][1] += elapsed
        return wrapper

    replaced: dict[int, Callable] = {}
    for phase, specs in PHASES.items():
        for module_name, path in specs:
            module = importlib.import_module(module_name)
            owner_name, _, name = path.rpartition(".")
            owner = getattr(module, owner_name) if owner_name else module
            names = [n for n, v in vars(owner).items() if inspect.isfunction(v) and not n.startswith("__")
                     and getattr(v, "__module__", None) == module_name] if name == "*" else [name]
            for n in names:
                original = vars(owner)[n]
                replaced[id(original)] = clocked(phase, original)
                setattr(owner, n, replaced[id(original)])
    for module in list(sys.modules.values()):  # names bound by ``from module import function``
        if getattr(module, "__name__", "").startswith("polyexp"):
            for n, v in list(vars(module).items()):
                if id(v) in replaced and v is not replaced[id(v)]:
                    setattr(module, n, replaced[id(v)])
    return own


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="joblib workers of the sweeps")
    parser.add_argument("--jobs", type=int, default=16, help="jobs of the big sweep")
    parser.add_argument("--quick", action="store_true", help="1 repeat, a 4-job sweep on 2 workers")
    parser.add_argument("--child", choices=["list", "floor", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--modules", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.child, args.modules, args.out, rest)
        return
    if args.quick:
        args.repeats, args.workers, args.jobs = 1, 2, 4
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_"))}
    me = [sys.executable, str(HERE)]
    joblib = ["averaging=exp", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}", "-m"]
    sweeps = {"1-job sweep": "averaging.alpha=1", f"{args.jobs}-job sweep": f"averaging.alpha=range(1,{args.jobs + 1})"}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counter = iter(range(10**6))

        def folder(store: bool) -> tuple[Path, dict[str, str]]:
            path = root / f"case{next(counter)}"
            path.mkdir()
            if store:
                shutil.copy(root / "store" / "mlflow.db", path / "mlflow.db")
            return path, {**env, "POLYEXP_CACHE_DIR": str(path / "cache")}

        (root / "store").mkdir()
        modules = root / "modules.txt"
        run([*me, "--child", "list", "--modules", str(modules)], root / "store",
            {**env, "POLYEXP_CACHE_DIR": str(root / "store" / "cache")})

        wall: dict[str, list[float]] = {}
        peak: dict[str, list[float]] = {}
        phases: list[dict[str, float]] = []
        cases: dict[str, tuple[list[str], bool]] = {
            "import floor": ([*me, "--child", "floor", "--modules", str(modules)], False),
            "default job": ([sys.executable, "-m", "polyexp"], True),
            "fresh store": ([sys.executable, "-m", "polyexp"], False),
            **{name: ([sys.executable, "-m", "polyexp", value, *joblib], True) for name, value in sweeps.items()},
        }
        for round_ in range(args.repeats):
            for case, (command, store) in cases.items():
                cwd, case_env = folder(store)
                seconds, mib, _ = run(command, cwd, case_env)
                wall.setdefault(case, []).append(seconds)
                peak.setdefault(case, []).append(mib)
            cwd, case_env = folder(True)
            out = cwd / "phases.json"
            run([*me, "--child", "profile", "--modules", str(modules), "--out", str(out)], cwd, case_env)
            phases.append(json.loads(out.read_text()))
            print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
        report(wall, peak, phases, len(modules.read_text().split()), args)


def report(wall: dict[str, list[float]], peak: dict[str, list[float]], phases: list[dict[str, float]],
           n_modules: int, args: argparse.Namespace) -> None:
    w = {case: median(values) for case, values in wall.items()}
    m = {case: median(values) for case, values in peak.items()}
    floor, job = w["import floor"], w["default job"]
    one, many = w["1-job sweep"], w[f"{args.jobs}-job sweep"]
    print(f"polyexp end to end: medians of {args.repeats} round(s); {os.cpu_count()} cores; "
          f"python {sys.version.split()[0]}\n")
    print(f"{'case':<16} {'wall':>8} {'peak RSS':>10}   against")
    against = {
        "import floor": f"{n_modules} modules, the default job's own",
        "default job": f"floor + {job - floor:.2f} s (target <= +{TARGET_GAP_S} s); "
                       f"peak {m['default job']:.0f} MiB (target < {TARGET_PEAK_MIB} MiB)",
        "fresh store": f"default job + {w['fresh store'] - job:.2f} s (the store's creation)",
        "1-job sweep": f"default job x {one / job:.2f} ({args.workers} joblib workers)",
        f"{args.jobs}-job sweep": f"1-job sweep x {many / one:.2f} (target <= {TARGET_SWEEP_RATIO}x); "
                                  f"default job x {many / job:.2f}",
    }
    for case in wall:
        print(f"{case:<16} {w[case]:7.2f}s {m[case]:7.0f} MiB   {against[case]}")
    print("\nthe default job, inside one process (imports done first; each phase without those it calls):\n")
    total = {phase: median([p[phase] for p in phases]) for phase in phases[0]}
    base = total["imports"]
    print(f"{'phase':<10} {'time':>8} {'x imports':>10}")
    for phase, seconds in total.items():
        print(f"{phase:<10} {seconds:7.3f}s {seconds / base:9.2f}x")
    print(f"{'all':<10} {sum(total.values()):7.3f}s")
    verdicts = [
        ("default job - floor", job - floor <= TARGET_GAP_S, f"{job - floor:.2f} s"),
        (f"{args.jobs}-job / 1-job sweep", many / one <= TARGET_SWEEP_RATIO, f"{many / one:.2f}x"),
        ("default job peak", m["default job"] < TARGET_PEAK_MIB, f"{m['default job']:.0f} MiB"),
    ]
    print("\ntargets: " + "; ".join(f"{name} {value} {'met' if ok else 'MISSED'}" for name, ok, value in verdicts))


if __name__ == "__main__":
    main()
