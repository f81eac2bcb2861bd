"""Shared setup for the kernel tests: a profile for the embedded backend and a private
Jupyter data dir holding the kernelspecs (never the machine's)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pai_magic.core.profiles import Profile, save_profile


def save_backend_profile(backend: Any, name: str = "lab") -> Profile:
    """A profile for the embedded backend in the current PAI_MAGIC_CONFIG_DIR."""
    return save_profile(Profile(name=name, url=backend.url, user=backend.user, token=backend.token))


@pytest.fixture
def jupyter_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "jupyter-data"
    data.mkdir()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    return data
