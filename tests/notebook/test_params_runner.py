"""Parameters read as papermill reads them, sweeps, injection; the task runner's one-line answer
when the image's Python lacks what execution needs (run for real with a Python that lacks it)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.notebook import task_runner
from pai_magic.core.notebook.params import inject_parameters, parse_pairs, parse_value, sweep_points
from tests.notebook.conftest import python_without_nbclient


def test_values_are_read_like_papermill_reads_them():
    assert [parse_value(v) for v in ("True", "False", "None", "3", "-2", "0.1", "1e-3", "abc", "01x")] == \
        [True, False, None, 3, -2, 0.1, 0.001, "abc", "01x"]
    assert isinstance(parse_value("3"), int) and isinstance(parse_value("3.0"), float)


def test_sweeps_zip_by_default_cross_with_grid_and_refuse_ragged_lists():
    values = parse_pairs([("lr", "0.1"), ("lr", "0.01"), ("bs", "32"), ("bs", "64"), ("tag", "x")])
    assert sweep_points(values) == [{"lr": 0.1, "bs": 32, "tag": "x"}, {"lr": 0.01, "bs": 64, "tag": "x"}]
    assert len(sweep_points(values, grid=True)) == 4
    with pytest.raises(InvalidInputError, match="--grid"):
        sweep_points(parse_pairs([("a", "1"), ("a", "2"), ("b", "1"), ("b", "2"), ("b", "3")]))
    with pytest.raises(InvalidInputError, match="Python name"):
        parse_pairs([("not a name", "1")])
    assert sweep_points({}) == [{}]


def test_injection_follows_the_parameters_cell_and_replaces_an_earlier_one():
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# t"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "lr = 1", "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": "print(lr)", "outputs": []}]}
    once = inject_parameters(nb, {"lr": 0.5, "name": "a'b", "ids": [1, 2], "cfg": {"k": None}})
    twice = inject_parameters(once, {"lr": 0.25})
    assert [c["metadata"].get("tags") for c in twice["cells"]] == [None, ["parameters"], ["injected-parameters"], None]
    src = once["cells"][2]["source"]
    namespace: dict = {}
    exec(src, namespace)  # the injected cell is valid Python that yields exactly the values
    assert (namespace["lr"], namespace["name"], namespace["ids"], namespace["cfg"]) == (0.5, "a'b", [1, 2], {"k": None})
    assert "lr = 0.25" in twice["cells"][2]["source"]
    no_tag = inject_parameters({"nbformat": 4, "cells": [{"cell_type": "code", "metadata": {}, "source": "x"}]},
                               {"x": 1})
    assert no_tag["cells"][0]["metadata"]["tags"] == ["injected-parameters"]


def test_runner_names_the_fix_when_the_image_lacks_nbclient(tmp_path):
    python = python_without_nbclient()
    shutil.copy(task_runner.__file__, tmp_path / "runner.py")
    (tmp_path / "input.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                                                      "cells": []}))
    (tmp_path / "run.json").write_text(json.dumps({"notebook": "input.ipynb", "linger": 0}))
    proc = subprocess.run([python, "runner.py", "run.json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    status = json.loads((tmp_path / "status.json").read_text())
    assert proc.returncode == 3 and status["state"] == "error"
    assert "nbclient" in status["message"] and "--install-deps" in status["message"]
    assert len(status["message"].splitlines()) == 1
    assert status["message"] in proc.stdout  # the job's log says it too


def test_results_index_keeps_every_run_recorded_from_many_threads_and_processes(tmp_path):
    """Sweep followers (threads) and other faces (processes) record at once: no entry is lost."""
    import os
    import sys
    import threading

    from pai_magic.core.notebook.results import NotebookResult, all_results, find_result, record

    def rec(i: int) -> None:
        record(NotebookResult(job=f"u~pai-nb-t{i}", state="RUNNING", out_dir=str(tmp_path / str(i))))

    code = ("import sys; from pai_magic.core.notebook.results import NotebookResult, record\n"
            "for i in range(20): record(NotebookResult(job=f'u~pai-nb-p{sys.argv[1]}-{i}', state='SUCCEEDED', "
            "out_dir='x'))")
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], env=env) for n in range(2)]
    threads = [threading.Thread(target=rec, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(60) == 0 for p in procs)
    assert len(all_results()) == 60
    assert find_result("pai-nb-t7").out_dir == str(tmp_path / "7")  # a bare name, unique among users
    assert find_result("u~pai-nb-nothing") is None


def test_route_paths_are_relative_to_the_server_root_or_null(tmp_path):
    from pai_magic.server.notebook_handlers import relative_to_root

    (tmp_path / "root" / "runs").mkdir(parents=True)
    inside = tmp_path / "root" / "runs" / "a.ipynb"
    inside.write_text("{}")
    assert relative_to_root(str(inside), str(tmp_path / "root")) == "runs/a.ipynb"
    assert relative_to_root(str(tmp_path / "elsewhere.ipynb"), str(tmp_path / "root")) is None
    assert relative_to_root(None, str(tmp_path / "root")) is None
