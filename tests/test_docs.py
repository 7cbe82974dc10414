"""The README and docs/ match the code: the plugin reference, CI's test command, the links between
pages, and every command block marked ``<!-- runs -->`` runs."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from polyexp.plugins import describe

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNS = re.compile(r"<!-- runs -->\n```sh\n(.*?)\n```", re.S)


def test_the_reference_lists_every_plugin_and_field():
    reference = (ROOT / "docs" / "plugins.md").read_text()
    block = re.search(r"<!-- plugins:begin -->\n```\n(.*?)\n```\n<!-- plugins:end -->", reference, re.S)
    assert block, "docs/plugins.md lost its plugin reference"
    documented = [line for line in block.group(1).splitlines() if line.strip()]
    listed, builtin = [], True
    for line in describe().splitlines():
        if not line.startswith(" "):  # a group
            builtin = True
        elif not line.startswith("      "):  # a plugin, then its fields
            builtin = "[built in]" in line  # other tests register plugins of their own
        if builtin and line.strip():
            listed.append(line)
    assert documented == listed


def test_ci_runs_the_readme_commands():
    commands = re.findall(r"```sh\n(python3 -m venv[^\n]+)\n```", README)
    assert len(commands) == 2 and commands[0].endswith("python -m polyexp")
    assert README.index(commands[1]) < README.index("\n## ")  # both at the very top
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1]


def test_the_front_page_is_short_and_links_every_page():
    assert len(README.encode()) < 10_000
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", README))
    assert linked == {page.name for page in PAGES[1:]}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_leads_to_a_file(page):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    missing = [t for t in targets if not t.startswith(("http://", "https://")) and not (page.parent / t).exists()]
    assert not missing


def quick_commands() -> list:
    commands = [(page, line) for page in PAGES for block in RUNS.findall(page.read_text())
                for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [pytest.param(line, id=f"{page.name}: {line}") for page, line in commands]


def test_the_readme_marks_the_quick_commands():
    marked = [p.values[0] for p in quick_commands() if p.id.startswith("README.md")]
    assert {"python -m polyexp.plugins", "python -m polyexp --help", "python -m polyexp --cfg job"} <= set(marked)


@pytest.mark.slow
@pytest.mark.parametrize("command", quick_commands())
def test_a_marked_command_runs(command, tmp_path):
    assert command.startswith("python "), "a marked command starts with python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_"))}
    env["POLYEXP_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(f"{sys.executable} {command.removeprefix('python ')}", shell=True, cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    assert not (tmp_path / "mlflow.db").exists()  # a quick command logs nothing


def test_every_table_of_the_studies_page_is_written_by_the_script_that_names_its_command():
    import importlib.util

    spec = importlib.util.spec_from_file_location("studies", ROOT / "benchmarks" / "studies.py")
    studies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(studies)
    page = (ROOT / "docs" / "studies.md").read_text()
    blocks = dict(re.findall(r"<!-- study:(\w+):start -->\n(.*?)\n<!-- study:\1:end -->", page, re.S))
    assert set(blocks) == set(studies.STUDIES)
    for name, block in blocks.items():
        assert block.startswith(f"Written by `python benchmarks/studies.py {name} --write docs/studies.md`")
        assert f"```sh\n{studies.command(name)}\n```" in block  # the sweep it ran, as a user runs it
    outside = re.sub(r"<!-- study:(\w+):start -->.*?<!-- study:\1:end -->", "", page, flags=re.S)
    assert not re.search(r"^\|", outside, re.M), "a table in docs/studies.md that benchmarks/studies.py did not write"
