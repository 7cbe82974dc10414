"""The README and docs/ match the code: the plugin reference, CI's test command, the links between
pages, and every command block marked ``<!-- runs -->`` runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

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


def load_studies():
    import importlib.util

    spec = importlib.util.spec_from_file_location("studies", ROOT / "benchmarks" / "studies.py")
    studies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(studies)
    return studies


DOCS = sorted((ROOT / "docs").glob("*.md"))
STUDY_PAGES = ["docs/studies.md", "docs/baselines.md"]  # every table of these is a study's, written by studies.py
BLOCK = re.compile(r"<!-- study:(\w+):start -->\n(.*?)\n<!-- study:\1:end -->", re.S)


def fenced(lines: list[str]) -> list[bool]:
    """For each line, whether it is inside a code fence (the fence lines included)."""
    inside, flags = False, []
    for line in lines:
        fence = line.lstrip().startswith("```")
        flags.append(inside or fence)
        inside ^= fence
    return flags


def tables(text: str) -> list[tuple[int, int]]:
    """Each Markdown table of a page (a run of lines starting with ``|``, indented or not, outside code
    fences), as the index of its first line and of the line after it."""
    lines = text.splitlines()
    rows = [line.lstrip().startswith("|") and not inside for line, inside in zip(lines, fenced(lines), strict=True)]
    return [(i, next((j for j in range(i, len(rows)) if not rows[j]), len(rows)))
            for i in range(len(rows)) if rows[i] and (i == 0 or not rows[i - 1])]


COMMAND = re.compile(r"^python (?:-m ([\w.]+)|([\w./-]+\.py))")


def script_of(command: str) -> Path | None:
    """The repository's file a ``python ...`` command runs (``-m a.b``: a/b.py or a/b/__main__.py); None if not ours."""
    match = COMMAND.match(command)
    if not match:
        return None
    module, path = match.groups()
    candidates = [ROOT / path] if path else [ROOT / f"{module.replace('.', '/')}.py",
                                             ROOT / module.replace(".", "/") / "__main__.py"]
    return next((c for c in candidates if c.is_file()), None)


def commands_in(text: str) -> list[str]:
    """The commands a piece of a page names: in backticks, or on a line of a code fence."""
    inline = re.findall(r"(?<!`)`(python [^`\n]+)`", text)
    fenced = [line.strip() for block in re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
              for line in block.splitlines()]
    return [c for c in inline + fenced if c.startswith("python ")]


@pytest.mark.parametrize("page", STUDY_PAGES)
def test_every_table_of_a_study_page_is_written_by_the_script_that_names_its_command(page):
    studies = load_studies()
    text = (ROOT / page).read_text()
    blocks = BLOCK.findall(text)
    names = [name for name, _ in blocks]
    assert len(names) == len(set(names)), f"a study has two blocks in {page}"
    assert set(names) <= set(studies.STUDIES), f"blocks in {page} of no study of benchmarks/studies.py"
    assert set(names) == {s for s in studies.STUDIES if studies.page(s) == page}
    for name, block in blocks:
        assert block.startswith(f"Written by `python benchmarks/studies.py {name} --write {page}`")
        assert f"```sh\n{studies.command(name)}\n```" in block  # the sweep it ran, as a user runs it
        assert tables(block), f"the block of {name} in {page} holds no table"
    outside = BLOCK.sub("", text)
    assert not tables(outside), f"a table in {page} that benchmarks/studies.py did not write"


@pytest.mark.parametrize("page", [p for p in DOCS if f"docs/{p.name}" not in STUDY_PAGES], ids=lambda p: p.name)
def test_every_table_in_docs_names_the_command_that_wrote_it(page):
    """Between a table and the heading or table before it (or in its header row), a command of the
    repository's in backticks: ``python benchmarks/...``, ``python -m polyexp...``, whose script exists."""
    lines = page.read_text().splitlines()
    heading = [line.startswith("#") and not inside for line, inside in zip(lines, fenced(lines), strict=True)]
    previous_end, unnamed = 0, []
    for start, end in tables(page.read_text()):
        after = max([previous_end, *(i for i in range(previous_end, start) if heading[i])])
        if not any(script_of(c) for c in commands_in("\n".join(lines[after:start + 1]))):
            unnamed.append(f"line {start + 1}: {lines[start].strip()}")
        previous_end = end
    assert not unnamed, f"tables of {page.name} that name no command of the repository: {unnamed}"


def test_the_table_check_finds_tables_and_the_scripts_of_commands():
    assert tables("a\n| x | y |\n|---|---|\n| 1 | 2 |\nb\n  | indented |\n```\n| fenced |\n```\n") == [(1, 4), (5, 6)]
    assert script_of("python benchmarks/studies.py x --write docs/studies.md") == ROOT / "benchmarks" / "studies.py"
    assert script_of("python -m polyexp seeds=10 -m") == ROOT / "polyexp" / "__main__.py"
    assert script_of("python -m polyexp.plugins schedule") == ROOT / "polyexp" / "plugins.py"
    assert script_of("python benchmarks/nothing.py") is None and script_of("python -m cProfile -m polyexp") is None
    assert commands_in("run `python a.py` and\n```sh\npython -m polyexp -m\n```\n``x``") == [
        "python a.py", "python -m polyexp -m"]
