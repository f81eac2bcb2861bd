"""Notebook-job tests run against the embedded backend (a real subprocess over real HTTP, real
task SSH): a client logged in as the backend's user, and small notebooks written as JSON."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.services import need

from pai_magic.core.client import PaiClient
from pai_magic.core.profiles import Profile


def write_notebook(path: Path, *cells: str, parameters: str | None = None) -> Path:
    """A notebook whose first cell (tagged ``parameters``) holds the defaults, then ``cells``."""
    items = []
    if parameters is not None:
        items.append({"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]},
                      "outputs": [], "source": parameters})
    for src in cells:
        items.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src})
    nb = {"cells": items, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 4}
    path.write_text(json.dumps(nb))
    return path


def outputs_text(nb_path: str | Path) -> str:
    """Every stream text and error of an executed notebook, joined."""
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
            elif out.get("output_type") == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


@pytest.fixture
def nb_client(local_backend, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no developer key: pai_magic generates its own
    prof = Profile(name="nb", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as client:
        yield client


@pytest.fixture
def cli_env(local_backend, tmp_path, monkeypatch):
    """The CLI's profile from PAI_* variables (what CI and scripts use)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    return local_backend


def python_without_nbclient() -> str:
    """Debian's own /usr/bin/python3, which has no nbclient: an image that lacks what runs notebooks."""
    python = shutil.which("python3", path="/usr/bin")
    bare = bool(python) and subprocess.run([python, "-c", "import nbclient"],  # type: ignore[list-item]
                                           capture_output=True).returncode != 0
    need(bare, "needs a Python without nbclient (Debian's /usr/bin/python3, apt-get install python3)")
    return python  # type: ignore[return-value]


def need_scheduler() -> None:
    need(importlib.util.find_spec("jupyter_scheduler") is not None,
         "jupyter_scheduler is not installed (pip install 'pai_magic[scheduler]')")
