"""One validation for every submit path: the same bad input gets the same one-line message,
about the same field, from the magic, the CLI, the server extension (a real Jupyter server)
and the panel. The sidebar and the panel used to accept an image the CLI refused."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from pai_magic.core import jobform
from pai_magic.core.errors import InvalidInputError
from tests.server.conftest import CheckedJupyter
from tests.server.jupyter_process import REPO

# (case, the form, extra CLI options (before `--`), the magic's line, cell commands, field)
CASES = [
    ("image", {"image": "Not A Valid Image!!"}, ["--image", "Not A Valid Image!!"],
     "--image 'Not A Valid Image!!'", "echo hi", "image"),
    ("gpu", {"gpu": -1}, ["--gpu", "-1"], "--gpu -1", "echo hi", "gpu"),
    ("memory", {"memory": "8X"}, ["--memory", "8X"], "--memory 8X", "echo hi", "memory"),
    ("storage", {"storages": ["data:rel/path"]}, ["--storage", "data:rel/path"], "--storage data:rel/path",
     "echo hi", "storages"),
    ("name", {"name": "bad name!"}, ["--name", "bad name!"], "'bad name!'", "echo hi", "name"),
    ("instances", {"instances": 0}, ["--instances", "0"], "--instances 0", "echo hi", "instances"),
    ("commands", {}, [], "", "", "commands"),
]


def _expected(form: dict[str, Any], commands: str) -> tuple[str, str | None]:
    """What the core says (every face must say exactly this)."""
    with pytest.raises(InvalidInputError) as caught:
        jobform.protocol_from_form({"image": "ubuntu:22.04", "commands": commands, **form}, resolve_image=False)
    return str(caught.value), caught.value.field


@pytest.fixture(scope="module")
def magic_shell(tmp_path_factory) -> Iterator[InteractiveShell]:
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config, ipython_dir=str(tmp_path_factory.mktemp("ipython")))
    shell.run_line_magic("load_ext", "pai_magic")
    yield shell
    shell.run_line_magic("unload_ext", "pai_magic")
    InteractiveShell.clear_instance()


@pytest.fixture
def profile(local_backend):
    from pai_magic.core.auth import login_with_password

    return login_with_password(local_backend.url, local_backend.user, local_backend.password)


@pytest.fixture
def panel(profile):
    from pai_magic.widgets import PaiPanel

    p = PaiPanel(refresh_interval=None)
    yield p
    p.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "pai_magic", *args], capture_output=True, text=True, env=env,
                          cwd=str(REPO), timeout=120)


@pytest.mark.parametrize("case,form,cli_args,magic_line,commands,field", CASES, ids=[c[0] for c in CASES])
def test_same_bad_input_same_message_from_every_face(api: CheckedJupyter, magic_shell, panel, profile,
                                                     case, form, cli_args, magic_line, commands, field):
    message, core_field = _expected(form, commands)
    assert core_field == field and "\n" not in message

    # server extension: 400 + {"error": message, "field": field}
    spec = {"image": "ubuntu:22.04", "commands": [commands] if commands else [], **form}
    resp = api.post("jobs", {"spec": spec})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == message and resp.json()["field"] == field, resp.json()

    # CLI: exit 2, one stderr line
    image = [] if "--image" in cli_args else ["--image", "ubuntu:22.04"]
    proc = _cli("submit", *image, *cli_args, *(["--", commands] if commands else []))
    assert proc.returncode == 2 and proc.stderr.strip() == f"pai-magic: {message}", proc.stderr

    # magic: a one-line UsageError
    result = magic_shell.run_cell(f"%%pai_job {magic_line}\n{commands}\n", store_history=False)
    err = result.error_in_exec
    assert isinstance(err, UsageError) and str(err) == message, repr(err)

    # panel: the message under the field
    f = panel.form
    f.fill({"image": "ubuntu:22.04", "commands": commands})
    if "image" in form:
        f.image.value = form["image"]
    if "gpu" in form:
        f.gpu.value = form["gpu"]
    if "memory" in form:
        f.memory.value = form["memory"]
    if "storages" in form:
        f.storages.value = ", ".join(form["storages"])
    if "name" in form:
        f.name.value = form["name"]
    if "instances" in form:
        f.instances.value = form["instances"]
    assert panel.submit() is None
    assert f.shown_errors() == {field: message}

    # and nothing was submitted by any of them
    assert panel.last_submitted is None
