"""%pai_run_notebook -p on a notebook with no cell tagged ``parameters`` (embedded backend, real
runs): one visible warning line, once for a whole sweep, and the runs still go; a parameter name
that is not a Python name is a one-line UsageError before anything is submitted."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from tests.notebook.conftest import outputs_text, write_notebook


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _warnings(pai):
    return [item for item in pai.recorder.items
            if any("no cell tagged `parameters`" in str(v) for v in item["data"].values())]


@pytest.mark.parametrize("display", ["html", "text"])
def test_sweep_warns_once_and_runs(pai, tmp_path, home, display):
    pai.run(f"%config PaiMagics.display = '{display}'")
    nb = write_notebook(tmp_path / "plain.ipynb", "lr = 1\nprint('lr is', lr)")
    pai.line("pai_run_notebook", f"{nb} --image python:3.11 -p lr 5 -p lr 6 -o runs")
    handle = pai.shell.user_ns["runs"]
    results = handle.wait(180)
    assert sorted(r.state for r in results.values()) == ["SUCCEEDED", "SUCCEEDED"]
    assert all(outputs_text(r.notebook).strip() == "lr is 1" for r in results.values())
    shown = _warnings(pai)
    assert len(shown) == 1, [i["data"] for i in shown]
    text = shown[0]["data"]["text/plain"]
    assert text.startswith("Warning: plain.ipynb has no cell tagged `parameters`: lr were set") and "\n" not in text
    assert ("text/html" in shown[0]["data"]) == (display == "html")
    assert handle.warnings == [text.removeprefix("Warning: ")]
    assert not any("no cell tagged" in line for line in handle.lines.values())  # not repeated in the live lines


def test_tagged_notebook_gives_no_warning(pai, tmp_path, home):
    nb = write_notebook(tmp_path / "tagged.ipynb", "print('lr is', lr)", parameters="lr = 1")
    pai.line("pai_run_notebook", f"{nb} --image python:3.11 -p lr 5 --wait -o run")
    (result,) = pai.shell.user_ns["run"].results.values()
    assert result.state == "SUCCEEDED" and outputs_text(result.notebook).strip() == "lr is 5"
    assert _warnings(pai) == [] and result.warnings == []


def test_bad_parameter_name_is_one_usage_line(pai, tmp_path, home):
    nb = write_notebook(tmp_path / "p.ipynb", "print(1)", parameters="x = 1")
    with pytest.raises(UsageError) as info:
        pai.line("pai_run_notebook", f"{nb} --image python:3.11 -p 1x 2")
    assert "\n" not in str(info.value) and "'1x' is not a Python name" in str(info.value)
