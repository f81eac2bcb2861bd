"""Parameters given to a notebook with no cell tagged ``parameters``: the core says so (papermill
warns too) and the run goes ahead; a parameter name that is not a Python name is refused by the
core, whichever face it came from. The CLI run is real: the embedded backend over HTTP, task SSH."""
from __future__ import annotations

import json

import pytest

from pai_magic.cli import main as cli_main
from pai_magic.core.errors import InvalidInputError
from pai_magic.core.notebook import NotebookRunSpec, find_result, prepare_run
from pai_magic.core.notebook.params import check_parameter_name, inject_parameters, injection_warning
from pai_magic.core.notebook.run import run_warnings
from tests.notebook.conftest import outputs_text, write_notebook

IMAGE = "python:3.11"


def _nb(tmp_path, tagged: bool):
    return json.loads(write_notebook(tmp_path / f"t{tagged}.ipynb", "print(lr)",
                                     parameters="lr = 1" if tagged else None).read_text())


def test_warning_only_when_values_go_to_the_top(tmp_path):
    untagged, tagged = _nb(tmp_path, False), _nb(tmp_path, True)
    line = injection_warning(untagged, {"lr": 0.5, "bs": 2}, "train.ipynb")
    assert line is not None and "\n" not in line
    assert line.startswith("train.ipynb has no cell tagged `parameters`: lr, bs were set in a new first cell")
    assert injection_warning(tagged, {"lr": 0.5}) is None
    assert injection_warning(untagged, {}) is None  # nothing injected: nothing to say


@pytest.mark.parametrize("bad", ["class", "None", "1x", "a b", "a-b", "", "x;import os"])
def test_parameter_names_that_cannot_be_assigned_are_refused_once_in_the_core(tmp_path, bad):
    with pytest.raises(InvalidInputError) as info:
        check_parameter_name(bad)
    assert "\n" not in str(info.value) and "is not a Python name" in str(info.value)
    # inject_parameters is the path of every face (the scheduler's dialog gives a dict, not -p pairs)
    with pytest.raises(InvalidInputError):
        inject_parameters(_nb(tmp_path, True), {bad: 1})
    assert check_parameter_name("learning_rate2") == "learning_rate2"


def test_prepared_runs_carry_the_warning_and_a_sweep_says_it_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    nb = write_notebook(tmp_path / "plain.ipynb", "print(lr)")
    spec = NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out"))
    runs = [prepare_run(NotebookRunSpec(**{**spec.__dict__, "parameters": {"lr": v}})) for v in (1, 2)]
    assert all(len(r.warnings) == 1 and "plain.ipynb has no cell tagged" in r.warnings[0] for r in runs)
    assert run_warnings(runs) == runs[0].warnings
    assert prepare_run(spec).warnings == []  # no parameters: nothing injected


def test_cli_warns_once_on_stderr_and_still_runs(cli_env, tmp_path, capsys):
    """A 2-point sweep of a notebook that sets ``lr`` itself: both jobs run (exit 0), the warning
    is ONE stderr line, and the executed copies show why it matters (the notebook's value won)."""
    nb = write_notebook(tmp_path / "plain.ipynb", "lr = 1\nprint('lr is', lr)")
    code = cli_main(["run-notebook", str(nb), "--image", IMAGE, "-p", "lr", "5", "-p", "lr", "6", "--wait",
                     "--json", "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pai-magic: warning: plain.ipynb has no cell tagged"), err
    data = json.loads(out)
    assert data["warnings"] == [lines[0].split("warning: ", 1)[1]]
    assert [r["state"] for r in data["runs"]] == ["SUCCEEDED", "SUCCEEDED"]
    names = {j["name"] for j in _jobs(cli_env)}
    for run in data["runs"]:
        assert run["job"].split("~")[1] in names
        assert outputs_text(run["notebook"]).strip() == "lr is 1"
        assert find_result(run["job"]).warnings == data["warnings"]


def test_cli_refuses_a_bad_parameter_name_before_anything_is_submitted(cli_env, tmp_path, capsys):
    nb = write_notebook(tmp_path / "p.ipynb", "print(1)", parameters="x = 1")
    before = {j["name"] for j in _jobs(cli_env)}
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "-p", "class", "1"]) == 2
    out, err = capsys.readouterr()
    assert not out and len(err.strip().splitlines()) == 1 and "'class' is not a Python name" in err, err
    assert {j["name"] for j in _jobs(cli_env)} == before


def _jobs(backend):
    import requests

    resp = requests.get(f"{backend.url}/rest-server/api/v2/jobs", headers=backend.headers(), timeout=30)
    resp.raise_for_status()
    body = resp.json()
    return body if isinstance(body, list) else body.get("data", body.get("jobs", []))
