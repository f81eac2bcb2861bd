"""The live status in a real Jupyter kernel (ipykernel through nbclient), as a notebook sees it.

The status line is a display with a display_id that the background watcher replaces with
``update_display_data`` messages, even while the kernel runs a later cell; nbclient applies
those updates to the output they name, as JupyterLab does. So the executed notebook shows
ONE status output per job, holding the final state.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def _notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_status_updates_in_place_in_a_real_kernel(local_backend, tmp_path, monkeypatch):
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    nb = _notebook([
        "%load_ext pai_magic\n%config PaiMagics.poll_interval = 0.2",
        "%%pai_job background -o job\nsleep 2\necho finished",
        "40 + 2",
        "detail = job.wait(timeout=90, show=False)\ndetail.state",
        "%%pai_job failing --wait\nexit 5",
        "%pai_jobs --limit 5",
    ])
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    background, answer, waited, failing, table = nb.cells[1:]

    assert answer.outputs[0]["data"]["text/plain"] == "42", "the kernel ran the next cell meanwhile"
    assert waited.outputs[0]["data"]["text/plain"] == "'SUCCEEDED'"
    status = [o for o in background.outputs if o.output_type == "display_data"]
    assert len(status) == 1, "one status output, replaced in place"
    html = status[0]["data"]["text/html"]
    assert "SUCCEEDED" in html and "exit code 0" in html
    failed = [o for o in failing.outputs if o.output_type == "display_data"]
    assert len(failed) == 1 and "FAILED" in failed[0]["data"]["text/html"]
    assert "exit code 5" in failed[0]["data"]["text/plain"]
    assert "<table" in table.outputs[0]["data"]["text/html"], "HTML table in a notebook"
    text = nbformat.writes(nb)
    assert local_backend.token not in text and local_backend.password not in text
