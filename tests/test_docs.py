"""The README matches the code: the plugin reference, and CI runs the README's test command."""

import re

from conftest import ROOT

from polyexp.plugins import describe

README = (ROOT / "README.md").read_text()


def test_the_reference_lists_every_plugin_and_field():
    block = re.search(r"<!-- plugins:begin -->\n```\n(.*?)\n```\n<!-- plugins:end -->", README, re.S)
    assert block, "README lost its plugin reference"
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
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1]
