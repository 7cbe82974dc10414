"""Sweeps on a real SLURM cluster (``hydra/launcher=slurm``): a single-node cluster with accounting,
started from Debian's packages in a folder of its own (``tests/slurm_cluster.sh``), as root.

Skipped where the packages are missing or the tests do not run as root; ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, Cli, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(p) for p in ("slurmctld", "slurmd", "slurmdbd", "sbatch", "mariadbd")),
                       reason="SLURM is not installed (apt-get install slurmctld slurmd slurm-client slurmdbd "
                              "mariadb-server; .ci/run does)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster's daemons run as root"),
]

SCRIPT = ROOT / "tests" / "slurm_cluster.sh"
# One CPU a job: two jobs run at once on a 2-core machine. 1 GB each. Small trainings.
LAUNCHER = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1",
            "hydra.launcher.cpus_per_task=1")
NOISE = re.compile(r"warn|traceback|error", re.I)


@pytest.fixture(scope="module")
def slurm_conf():
    """A running SLURM cluster: yields its SLURM_CONF, then cancels its jobs and stops it."""
    # Not under pytest's tmp_path: MariaDB's socket lives in it, and a socket's path is limited to 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="slurm", dir="/tmp"))
    ports = {name: str(free_port()) for name in ("SLURMCTLD_PORT", "SLURMD_PORT", "SLURMDBD_PORT", "DB_PORT")}
    env = {**os.environ, **ports}
    conf = folder / "slurm.conf"
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert started.returncode == 0, started.stderr + "".join(
            p.read_text() for p in (folder / "log").glob("*.log"))
        yield conf
    finally:
        subprocess.run(["scancel", "--full", "--user=root"], env={**env, "SLURM_CONF": str(conf)},
                       capture_output=True, check=False)
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], env=env, capture_output=True, check=False)
        time.sleep(1)
        if os.environ.get("POLYEXP_KEEP_SLURM") is None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def slurm_cli(cli: Cli, slurm_conf: Path) -> Cli:
    """The CLI with this cluster's SLURM_CONF (the jobs inherit the environment, the cache folder too)."""
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    cli.env.update(SLURM_CONF=str(slurm_conf), POLYEXP_PLUGINS="stalling_plugins", PYTHONPATH=path)
    return cli


def slurm(cli: Cli, *args: str) -> str:
    return subprocess.run(list(args), env=cli.env, capture_output=True, text=True, check=True).stdout


def by_name(cli: Cli) -> dict[str, object]:
    return {r.info.run_name: r for r in cli.jobs()}


def test_a_sweep_runs_on_slurm_with_one_training_and_no_noise(slurm_cli: Cli):
    started = time.perf_counter()
    result = slurm_cli.run(*LAUNCHER, "averaging=exp", "averaging.alpha=1,2,3,4", "epochs=20", "-m")
    seconds = time.perf_counter() - started

    assert result.returncode == 0, result.stderr
    noise = [line for line in (result.stdout + result.stderr).splitlines() if NOISE.search(line)]
    assert noise == []
    (parent,) = slurm_cli.sweeps()
    jobs = slurm_cli.jobs()
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 4
    assert sorted(r.info.run_name for r in jobs) == [f"exp alpha={a}" for a in (1, 2, 3, 4)]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert sorted(r.data.tags["polyexp.trajectory"] for r in jobs) == ["reused", "reused", "reused", "trained"]
    # Each job ran as a task of one SLURM job array, and submitit saw it complete.
    (sweep,) = (slurm_cli.workdir / "multirun").glob("*/*")
    logs = sorted((sweep / ".submitit").glob("*_*/*_log.err"))
    assert [log.parent.name.partition("_")[2] for log in logs] == ["0", "1", "2", "3"]
    assert all("Job completed successfully" in log.read_text() for log in logs)
    print(f"4-job sweep on SLURM: {seconds:.1f} s")


def test_refused_submissions_fail_in_one_line_before_any_run(slurm_cli: Cli):
    for setting in ("mem_gb=100000", "partition=nowhere", "cpus_per_task=4096"):
        result = slurm_cli.run(*LAUNCHER, f"hydra.launcher.{setting}", "averaging=exp", "averaging.alpha=1,2",
                               "epochs=20", "-m")
        assert result.returncode != 0
        (line,) = [line for line in result.stderr.splitlines() if "refuses" in line]
        # sbatch's own words (they vary with SLURM's version) follow the setting that it refuses.
        assert re.fullmatch(rf"hydra\.launcher\.{setting}: the SLURM cluster refuses the jobs \(.+\)", line)
        assert "Traceback" not in result.stderr
    assert slurm_cli.runs() == [] and not (slurm_cli.workdir / "multirun").exists()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_jobs_that_slurm_stops_fail_with_the_reason_and_a_rerun_finishes_them(slurm_cli: Cli):
    # Three jobs, one training: exp finishes; "stalls copy=1" runs into the time limit; the test
    # cancels "stalls copy=2" with scancel. The same command without the stall finishes the two.
    command = (*LAUNCHER, "hydra.launcher.timeout_min=1", "averaging=exp,stalls", "averaging.copy=1,2",
               "epochs=20", "-m")
    process = slurm_cli.start(*command, env={"POLYEXP_TEST_STALL": "1"})
    wait_for(lambda: "stalls copy=2" in by_name(slurm_cli), 300, "the job stalls copy=2 to start")  # a busy machine
    (job,) = (slurm_cli.workdir / "multirun").glob("*/*/.submitit/*_2")
    slurm(slurm_cli, "scancel", job.name)
    output, _ = process.communicate(timeout=420)  # the time limit: 60 to 90 s after the job starts

    assert process.returncode != 0, output
    assert "Traceback" not in output
    runs = by_name(slurm_cli)
    assert runs["exp"].info.status == "FINISHED"
    assert runs["stalls copy=1"].info.status == "FAILED"
    assert "SLURM stopped the job at its time limit (hydra.launcher.timeout_min=1)" in \
        runs["stalls copy=1"].data.tags["polyexp.error"]
    assert runs["stalls copy=2"].info.status == "FAILED"
    assert "SLURM cancelled the job" in runs["stalls copy=2"].data.tags["polyexp.error"]
    (parent,) = slurm_cli.sweeps()
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_failed"] == 2

    again = slurm_cli.run(*command)
    assert again.returncode == 0, again.stderr
    (same,) = slurm_cli.sweeps()
    assert same.info.run_id == parent.info.run_id and same.info.status == "FINISHED"
    assert same.data.metrics["jobs_skipped"] == 1 and same.data.metrics["jobs_finished"] == 2
    finished = [r for r in slurm_cli.jobs() if r.info.status == "FINISHED"]
    assert sorted(r.info.run_name for r in finished) == ["exp", "stalls copy=1", "stalls copy=2"]
    assert sorted(r.data.tags["polyexp.trajectory"] for r in finished) == ["reused", "reused", "trained"]
    assert {r.data.tags["mlflow.parentRunId"] for r in slurm_cli.jobs()} == {parent.info.run_id}


def test_ctrl_c_cancels_the_slurm_jobs_and_ends_every_run(slurm_cli: Cli):
    process = slurm_cli.start(*LAUNCHER, "averaging=stalls", "averaging.copy=1,2", "epochs=20", "-m",
                              env={"POLYEXP_TEST_STALL": "1"})
    wait_for(lambda: len(slurm_cli.jobs()) == 2, 120, "both jobs to start")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 130, output
    assert "Traceback" not in output
    (parent,) = slurm_cli.sweeps()
    assert parent.info.status == "KILLED"
    wait_for(lambda: slurm(slurm_cli, "squeue", "-h") == "", 30, "the cancelled jobs to leave the queue")
    assert {r.info.status for r in slurm_cli.jobs()} <= {"KILLED", "FAILED"}


def test_a_job_killed_outright_while_the_accounting_is_down_still_ends_the_sweep(slurm_cli: Cli):
    # SIGKILL to every process of the job leaves no result and no time to end the run; sacct fails for
    # this command (a failing sacct first on PATH, as when slurmdbd lags or is down). submitit alone
    # would wait for sacct forever.
    no_accounting = slurm_cli.workdir.parent / "no_accounting"
    no_accounting.mkdir()
    (no_accounting / "sacct").write_text("#!/bin/sh\necho 'sacct: error: slurmdbd: not responding' >&2\nexit 1\n")
    (no_accounting / "sacct").chmod(0o755)
    process = slurm_cli.start(*LAUNCHER, "averaging=stalls", "averaging.copy=1", "epochs=20", "-m",
                              env={"POLYEXP_TEST_STALL": "1", "PATH": f"{no_accounting}:{os.environ['PATH']}"})
    wait_for(lambda: len(slurm_cli.jobs()) == 1, 120, "the job to start")
    (job,) = {p.parent.name for p in (slurm_cli.workdir / "multirun").glob("*/*/.submitit/*/*_submitted.pkl")}
    pids = [int(line.split()[0]) for line in slurm(slurm_cli, "scontrol", "listpids", job).splitlines()[1:]]
    for pid in pids:  # as the kernel's OOM killer would
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == 1, output
    assert "Traceback" not in output and f"SLURM job {job} ended" in output, output
    (run,) = slurm_cli.jobs()
    assert run.info.status == "FAILED" and "its process ended without ending the run" in run.data.tags["polyexp.error"]
    (parent,) = slurm_cli.sweeps()
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_missing"] == 1
