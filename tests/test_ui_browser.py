"""``python -m polyexp.ui`` in a real headless Chromium, as a new user sees it: a fresh profile.

A sweep through the real CLI, then the printed link: the runs table (parent and children), a child's
plot under Artifacts, the compare view of the children, the parent's page. Needs Debian's Chromium
(``apt-get install chromium``); Playwright drives it.
"""

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import Cli, free_port, processes_with, sweep_runs
from playwright.sync_api import Page, expect, sync_playwright

from polyexp.run.links import artifact_url, compare_url, run_url, runs_url, ui_address

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and nothing that reaches for the network this machine does not have.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
PAGE_MS = 60_000  # a cold page on a busy 2-core machine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium"),
]


def lines_of(process: subprocess.Popen) -> "queue.Queue[str]":
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            found.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return found


def printed_url(lines: "queue.Queue[str]", process: subprocess.Popen) -> str:
    while True:
        try:
            line = lines.get(timeout=150)
        except queue.Empty:
            raise AssertionError("python -m polyexp.ui printed no link") from None
        if line.startswith("http"):
            return line
        assert process.poll() is None, f"python -m polyexp.ui exited ({process.returncode})"


def processes_of(workdir: Path) -> list[int]:
    """Processes whose environment names ``workdir``: every one the CLI started there, and their children."""
    return list(processes_with(f"POLYEXP_CACHE_DIR={workdir / 'cache'}", whole_entry=True))


def test_the_printed_link_opens_on_the_runs_of_a_sweep(cli: Cli, tmp_path):
    result = cli.run("averaging=exp", "averaging.alpha=1,2", "epochs=30", "-m")
    assert result.returncode == 0, result.stderr
    (parent,), children = sweep_runs(cli.client())
    experiment_id = parent.info.experiment_id
    names = sorted(r.info.run_name for r in children)
    assert names == ["exp alpha=1", "exp alpha=2"]
    hint = f"view: python -m polyexp.ui\n      {run_url(ui_address('sqlite:'), experiment_id, parent.info.run_id)}\n"
    assert hint in result.stderr  # the sweep ends by pointing at its parent run

    port, log = free_port(), (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "polyexp.ui", "--port", str(port)], cwd=cli.workdir, env=cli.env,
        stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
    )
    try:
        url = printed_url(lines_of(server), server)
        ui = ui_address("sqlite:", port)
        assert url == runs_url(ui, experiment_id)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                tmp_path / "profile", executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
            try:
                page = browser.pages[0]
                check_runs_table(page, url, parent.info.run_name, names)
                plot = artifact_url(ui, experiment_id, children[0].info.run_id, "plots/accuracy_vs_n.png")
                check_artifact(page, plot)
                page.goto(compare_url(ui, experiment_id, [r.info.run_id for r in children]))
                expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible(timeout=PAGE_MS)
                for name in names:
                    expect(page.get_by_text(name, exact=True).first).to_be_visible()
                page.goto(run_url(ui, experiment_id, parent.info.run_id))  # where the sweep's hint points
                expect(page.get_by_text("Child runs", exact=True)).to_be_visible(timeout=PAGE_MS)
                for name in names:
                    expect(page.get_by_role("link", name=name)).to_be_visible()
            finally:
                browser.close()

        # With a tracking server there is nothing to start: the link into it, at once.
        remote = subprocess.run([sys.executable, "-m", "polyexp.ui", "--uri", f"http://127.0.0.1:{port}"],
                                cwd=tmp_path, env=cli.env, capture_output=True, text=True, timeout=120)
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == runs_url(f"http://127.0.0.1:{port}/", experiment_id) + "\n"

        server.send_signal(signal.SIGINT)  # Ctrl-C
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(60)
        log.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert processes_of(cli.workdir) == []


def check_runs_table(page: Page, url: str, parent: str, children: list[str]) -> None:
    page.goto(url)
    name = page.get_by_role("gridcell").filter(has_text=parent)
    expect(name).to_be_visible(timeout=PAGE_MS)
    assert "/runs?" in page.url and "overview" not in page.url
    # Model training, not GenAI: its heading and sidebar (GenAI names this table "Training runs").
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Model registry")).to_be_visible()
    expect(page.get_by_text("Observability", exact=True)).to_have_count(0)
    assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") is None  # the link alone did it
    name.get_by_role("button").click()  # expand the parent: its jobs
    for child in children:
        exactly = re.compile(rf"{re.escape(child)}(?![,\d])")  # not the parent's name, "... alpha=1,2"
        expect(page.get_by_role("gridcell").filter(has_text=exactly)).to_be_visible(timeout=PAGE_MS)


def check_artifact(page: Page, url: str) -> None:
    with page.expect_response(lambda r: "get-artifact" in r.url and "plots/accuracy_vs_n.png" in unquote(r.url),
                              timeout=PAGE_MS) as fetched:
        page.goto(url)
    assert fetched.value.status == 200 and fetched.value.headers["content-type"] == "image/png"
    image = page.get_by_alt_text("plots/accuracy_vs_n.png")
    expect(image).to_be_visible(timeout=PAGE_MS)
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
