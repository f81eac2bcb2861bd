"""``%pai_kernel`` and ``%pai_run_notebook`` fed bad input in a real InteractiveShell, logged in
to the embedded backend over real HTTP: a one-line ``UsageError`` in the notebook's words
(magic names, never ``pai-magic ...`` verbs), and no job submitted for a bad value."""
from __future__ import annotations

import json

import pytest
import requests
from IPython.core.error import UsageError

NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                       "outputs": [], "source": "x = 1\n"}]}


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    return tmp_path / "jupyter" / "kernels"


def _usage(pai, line: str) -> str:
    with pytest.raises(UsageError) as info:
        pai.run(line)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def _notebook_jobs(backend) -> set[str]:
    resp = requests.get(f"{backend.api}/jobs", headers=backend.headers(), timeout=30)
    resp.raise_for_status()
    return {j["name"] for j in resp.json() if j["name"].startswith("pai-nb-")}


def test_pai_kernel_bad_input_is_one_line_in_magic_words(pai, kernels):
    assert "%pai_kernel list" in _usage(pai, "%pai_kernel remove nosuchkernel")
    assert "pai-magic" not in _usage(pai, "%pai_kernel remove nosuchkernel")
    assert "takes no name" in _usage(pai, "%pai_kernel list pai-gpu")
    assert "CPUs per instance must be 1 or more" in _usage(pai, "%pai_kernel install k --image python:3.11 --cpu 0")
    assert "--lease must be" in _usage(pai, "%pai_kernel install k --image python:3.11 --lease nan")
    assert "is not an image name" in _usage(pai, "%pai_kernel install k --image 'bad image!'")
    assert not (kernels / "k").exists()


def test_pai_run_notebook_bad_values_submit_nothing(pai, tmp_path):
    nb = tmp_path / "train.ipynb"
    nb.write_text(json.dumps(NOTEBOOK))
    before = _notebook_jobs(pai.backend)
    for options, words in ((["--timeout", "nan"], "--timeout must be more than 0"),
                           (["--cpu", "0"], "CPUs per instance must be 1 or more"),
                           (["--image", "'a b'"], "is not an image name"),
                           (["--python", "'rm -rf;'"], "is not a path to a Python")):
        image = [] if options[0] == "--image" else ["--image", "python:3.11"]
        assert words in _usage(pai, " ".join(["%pai_run_notebook", str(nb), *image, *options]))
    assert _notebook_jobs(pai.backend) == before


def test_pai_kernel_install_over_an_existing_name_says_it_replaced_it(pai, kernels):
    first = pai.run("%pai_kernel install pai-twice --image python:3.11 --gpu 0")
    assert "Installed kernel pai-twice" in repr(first)
    second = pai.run("%pai_kernel install pai-twice --image python:3.11 --gpu 2")
    assert "Replaced kernel pai-twice" in repr(second) and "2 GPUs" in repr(second)
    assert json.loads((kernels / "pai-twice" / "kernel.json").read_text())["metadata"][
        "kernel_provisioner"]["config"]["gpu"] == 2
