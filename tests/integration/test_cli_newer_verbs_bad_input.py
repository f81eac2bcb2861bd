"""The newer verbs (``run-notebook``, ``notebook-result``, ``kernel``) fed bad input by a hostile
or unlucky user, against the embedded backend over real HTTP: every mistake ends at once with
exit code 2 and ONE stderr line that says what to do next, and nothing is submitted for it.
Before: ``notebook-result X --wait`` waited for ever on an unknown job, a refused token, a
stopped or hung cluster; run-notebook and kernel install took ``--cpu 0``, ``--timeout nan``,
``--lease nan``, an image with a space, ``--python 'rm -rf;'``.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.integration.test_cli import cli  # noqa: F401 - the CLI fixture, shared
from tests.integration.test_client_deadline import HungServer
from tests.integration.test_local_hardening import simple_job

pytestmark = pytest.mark.usefixtures("local_backend")

NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                       "outputs": [], "source": "x = 1\n"},
                      {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": "print(x)\n"}]}


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nb") / "train.ipynb"
    path.write_text(json.dumps(NOTEBOOK))
    return path


@pytest.fixture(scope="module")
def hung():
    server = HungServer()
    yield server
    server.close()


def _as(backend, token: str | None = None) -> dict[str, str]:
    """A profile from the environment (no profile file): the backend's user with ``token``."""
    return {"PAI_URL": backend.url, "PAI_USER": backend.user, "PAI_TOKEN": token or backend.token}


def _notebook_jobs(backend) -> set[str]:
    resp = requests.get(f"{backend.api}/jobs", headers=backend.headers(), timeout=30)
    resp.raise_for_status()
    return {j["name"] for j in resp.json() if j["name"].startswith("pai-nb-")}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    return proc.stderr.strip()  # the cli fixture checked: one line, no traceback


@pytest.mark.parametrize("options, words", [
    (["--timeout", "nan"], "--timeout must be more than 0 seconds"),
    (["--timeout", "inf"], "--timeout must be more than 0 seconds"),
    (["--cpu", "0"], "CPUs per instance must be 1 or more"),
    (["--gpu", "-2"], "GPUs per instance must be 0 or more"),
    (["--image", "a b"], "is not an image name"),
    (["--python", "rm -rf;"], "is not a path to a Python"),
    (["--storage", "data:relative"], "the mount path must be absolute"),
    (["--vc", "a b"], "is not a name"),
])
def test_run_notebook_options_are_refused_before_anything_is_submitted(
        cli, local_backend, notebook, options, words):  # noqa: F811
    before = _notebook_jobs(local_backend)
    proc = cli("run-notebook", str(notebook), "--image", "python:3.11", *options, extra_env=_as(local_backend))
    assert words in _error(proc)
    assert proc.stdout == ""
    assert _notebook_jobs(local_backend) == before


def test_a_refused_submit_says_so_once_and_no_running_hint(cli, local_backend, notebook):  # noqa: F811
    proc = cli("run-notebook", str(notebook), "--image", "python:3.11", "--storage", "nosuchstorage",
               extra_env=_as(local_backend))
    assert "was not submitted" in _error(proc) and "nosuchstorage" in proc.stderr
    assert "running" not in proc.stdout and proc.stdout.strip() == ""


def test_notebook_result_wait_on_an_unknown_or_foreign_job_ends_at_once(cli, local_backend):  # noqa: F811
    proc = cli("notebook-result", "pai-nb-nosuchrun_x1y2z3w4", "--wait", extra_env=_as(local_backend), timeout=60)
    assert "No job" in _error(proc) and "pai-magic jobs" in proc.stderr

    plain = f"plain_{int(time.time() * 1000)}"
    resp = local_backend.submit(simple_job(plain, ["true"]))
    assert resp.status_code in (200, 201, 202), resp.text
    proc = cli("notebook-result", plain, "--wait", extra_env=_as(local_backend), timeout=60)
    assert "is not a notebook run" in _error(proc)


def test_notebook_result_wait_with_a_refused_token_ends_at_once(cli, local_backend):  # noqa: F811
    bad = local_backend.token[:-4] + ("AAAA" if not local_backend.token.endswith("AAAA") else "BBBB")
    proc = cli("notebook-result", "pai-nb-x_abcdefgh", "--wait", extra_env=_as(local_backend, bad), timeout=60)
    assert "refused" in _error(proc) and "login" in proc.stderr
    cli.assert_no_secret(bad, local_backend.token)


def test_notebook_result_wait_on_a_stopped_cluster_ends_at_once(cli, local_backend):  # noqa: F811
    env = dict(_as(local_backend), PAI_URL=f"http://127.0.0.1:{_closed_port()}")
    proc = cli("notebook-result", "pai-nb-x_abcdefgh", "--wait", extra_env=env, timeout=60)
    assert "Cannot reach" in _error(proc)


def test_notebook_result_wait_on_a_hung_cluster_ends_within_the_deadline(cli, local_backend, hung):  # noqa: F811
    started = time.monotonic()
    proc = cli("notebook-result", "pai-nb-x_abcdefgh", "--wait", "--request-timeout", "2",
               extra_env=dict(_as(local_backend), PAI_URL=hung.url), timeout=60)
    assert time.monotonic() - started < 30
    assert f"No answer from {hung.url}" in _error(proc) and "within 2 s" in proc.stderr


@pytest.mark.parametrize("options, words", [
    (["--cpu", "0"], "CPUs per instance must be 1 or more"),
    (["--lease", "nan"], "--lease must be a number of seconds"),
    (["--lease", "inf"], "--lease must be a number of seconds"),
    (["--image", "bad image!"], "is not an image name"),
])
def test_kernel_install_refuses_what_a_job_form_refuses(cli, local_backend, tmp_path, options, words):  # noqa: F811
    env = dict(_as(local_backend), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    proc = cli("kernel", "install", "pai-bad", "--image", "python:3.11", *options, extra_env=env)
    assert words in _error(proc)
    assert not (tmp_path / "jupyter" / "kernels" / "pai-bad").exists()


def test_kernel_verbs_take_the_request_timeout_every_verb_takes(cli, local_backend, tmp_path):  # noqa: F811
    env = dict(_as(local_backend), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    proc = cli("kernel", "list", "--request-timeout", "5", extra_env=env)
    assert proc.returncode == 0, proc.stderr


def test_an_extra_argument_points_at_the_verbs_own_help(cli, local_backend, tmp_path):  # noqa: F811
    env = dict(_as(local_backend), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    proc = cli("kernel", "install", "pai-a", "pai-b", "--image", "python:3.11", extra_env=env)
    assert "unrecognized arguments: pai-b" in _error(proc) and "`pai-magic kernel install --help`" in proc.stderr
    assert not (tmp_path / "jupyter" / "kernels").exists()
    proc = cli("notebook-result", "a", "b", extra_env=env)
    assert "`pai-magic notebook-result --help`" in _error(proc)


def test_run_notebook_into_a_folder_it_cannot_write_submits_nothing(cli, local_backend, notebook, tmp_path):  # noqa: F811
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = _notebook_jobs(local_backend)
    proc = cli("run-notebook", str(notebook), "--image", "python:3.11", "--out", str(blocker / "runs"),
               extra_env=_as(local_backend))
    assert "Cannot keep run folders in" in _error(proc) and "--out" in proc.stderr
    assert _notebook_jobs(local_backend) == before


def test_doctor_against_a_hung_registry_ends_within_the_request_timeout(cli, local_backend, hung):  # noqa: F811
    started = time.monotonic()
    proc = cli("--json", "doctor", "--registry", hung.url, "--request-timeout", "2", extra_env=_as(local_backend),
               timeout=120)
    assert time.monotonic() - started < 30  # was a minute: the registry's own 60 s read timeout
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1 and checks["cluster"]["ok"]
    assert not checks["registry"]["ok"] and f"No answer from {hung.url} within 2 s" in checks["registry"]["message"]


def test_kernel_install_from_an_environment_only_login_is_refused(cli, local_backend, tmp_path):  # noqa: F811
    """The spec would name profile 'env', which the Jupyter server starting the kernel never finds."""
    env = dict(_as(local_backend), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    proc = cli("kernel", "install", "pai-env", "--image", "python:3.11", extra_env=env)
    assert "needs a saved profile" in _error(proc) and "pai-magic login URL" in proc.stderr
    assert not (tmp_path / "jupyter" / "kernels" / "pai-env").exists()
    cli.assert_no_secret(local_backend.token)


def test_notebook_result_wait_on_another_users_run_says_whose_it_is(cli, local_backend):  # noqa: F811
    run = f"pai-nb-theirs_{int(time.time() * 1000)}"
    resp = local_backend.submit(simple_job(run, ["true"]))
    assert resp.status_code in (200, 201, 202), resp.text
    other, password = f"bob{int(time.time() * 1000)}", "bob-password-1"
    made = requests.post(f"{local_backend.api}/users", json={"username": other, "password": password},
                         headers=local_backend.headers(), timeout=30)
    assert made.status_code == 201, made.text
    token = requests.post(f"{local_backend.api}/authn/basic/login", json={"username": other, "password": password},
                          timeout=30).json()["token"]
    env = {"PAI_URL": local_backend.url, "PAI_USER": other, "PAI_TOKEN": token}
    proc = cli("notebook-result", f"{local_backend.user}~{run}", "--wait", extra_env=env, timeout=60)
    assert f"is {local_backend.user}'s run" in _error(proc) and "pai-magic job" in proc.stderr
    cli.assert_no_secret(token, password)


def test_a_sweep_against_a_stopped_cluster_is_one_line_and_one_attempt(cli, local_backend, notebook):  # noqa: F811
    env = dict(_as(local_backend), PAI_URL=f"http://127.0.0.1:{_closed_port()}")
    proc = cli("run-notebook", str(notebook), "--image", "python:3.11", "-p", "x", "1", "-p", "x", "2",
               "-p", "x", "3", extra_env=env)
    assert "none of the 3 runs was submitted" in _error(proc) and "Cannot reach" in proc.stderr
    assert cli("run-notebook", "", "--image", "python:3.11", extra_env=env).stderr.strip() == \
        "pai-magic: Give the notebook to run, e.g. train.ipynb."
