"""Your own data through the real CLI: a CSV file runs end to end; a bad one fails before anything runs."""

import numpy as np
import pytest
from conftest import Cli, table

pytestmark = pytest.mark.slow

SMALL = ("epochs=30", "window.size=3")


def write_rows(cli: Cli, shift: float = 0.0) -> None:
    rng = np.random.default_rng(0)
    lines = ["width,length,species"] + [f"{a + shift:.4f},{b:.4f},{name}"
                                        for name, centre in (("setosa", 0), ("versicolor", 2), ("virginica", 4))
                                        for a, b in rng.normal(centre, 1, size=(40, 2))]
    (cli.workdir / "flowers.csv").write_text("\n".join(lines) + "\n")


def test_a_csv_file_runs_and_an_edited_file_is_new_data(cli: Cli):
    write_rows(cli)
    args = ("data=csv", "data.path=flowers.csv", "data.target=species", *SMALL)
    first = cli.run(*args)
    assert first.returncode == 0, first.stderr
    assert len(table(first.stdout)) == 3
    (run,) = cli.runs()
    assert run.data.params["data.path"] == "flowers.csv" and run.data.tags["polyexp.trajectory"] == "trained"
    assert "reused the cached trajectory" in cli.run(*args).stderr
    write_rows(cli, shift=0.5)  # the same path, other rows
    edited = cli.run(*args)
    assert edited.returncode == 0 and "reused" not in edited.stderr
    assert len({r.data.tags["polyexp.job_key"] for r in cli.runs()}) == 2


@pytest.mark.parametrize(("args", "message"), [
    (("data.path=nowhere.csv", "data.target=species"), "data.path='nowhere.csv' is not allowed: no such file"),
    (("data.path=flowers.csv", "data.target=kind"),
     "data.target='kind' is not allowed: flowers.csv has no such column"),
    (("data.path=flowers.csv",), "data.target is required by data plugin 'csv': set it"),
])
def test_a_data_file_that_cannot_be_used_fails_in_one_line_before_anything_runs(cli: Cli, args, message):
    write_rows(cli)
    for mode in ((), ("-m",)):
        result = cli.run("data=csv", *args, *SMALL, *mode)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert message in result.stderr
        assert cli.runs() == []
