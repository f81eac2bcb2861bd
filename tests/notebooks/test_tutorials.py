"""Every tutorial in notebooks/ runs as-is, in a real kernel, against the embedded backend
the notebook itself starts with %pai_local (and a real registry for the registry tutorial)."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs_as_is(path: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch):
    if "registry" in path.stem:
        registry = request.getfixturevalue("registry")
        monkeypatch.setenv("PAI_REGISTRY", registry.url)
    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    # the tutorial's own kernel talks over Unix sockets: picking free TCP ports for it raced with the
    # ports the embedded backend and the kernel tutorial's forwarders bind ("Address already in use")
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel-ipc"))
    client = NotebookClient(nb, km=km, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    try:
        client.execute(env=dict(os.environ))
    except CellExecutionError as exc:
        pytest.fail(f"{path.name}: {str(exc).strip().splitlines()[-1]}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # the tutorial's own secrets never reach its outputs
    tokens = _profile_tokens()
    assert tokens, "the tutorial logged in, so its profile holds a token"
    text = nbformat.writes(nb)
    assert not any(t in text for t in tokens)


def _profile_tokens() -> list[str]:
    import yaml

    from pai_magic.core.paths import config_dir

    path = config_dir() / "profiles.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    found = []
    for prof in (data.get("profiles") or {}).values():
        if isinstance(prof, dict) and prof.get("token"):
            found.append(str(prof["token"]))
    return found
