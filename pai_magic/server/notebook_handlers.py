"""``GET /pai-magic/api/jobs/<user~name>/notebook``: where a notebook run's executed copy is.

The sidebar links a notebook-run job (name prefix ``pai-nb-``) to its executed notebook once
it is back. The answer comes from the runs index (:func:`pai_magic.core.notebook.find_result`)
on this machine, not from the cluster, so it costs no request to OpenPAI. ``path`` is relative
to the Jupyter server's ``root_dir`` (what JupyterLab opens), or null when the file lies
outside it; ``absolute_path`` is always given once something came back. ``warnings`` are the
core's lines about the run (e.g. parameters put at the top of a notebook with no cell tagged
``parameters``), an empty list when there are none. ``outputs`` are the files the notebook
wrote that came back (``name`` relative to the run folder, ``path`` as ``path`` is), and
``outputs_message`` the core's line about them (what stayed in the task included).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tornado.web

from pai_magic.core.errors import NotFoundError
from pai_magic.server.handlers import PaiApiHandler, check_job_name


def relative_to_root(path: str | None, root_dir: str | None) -> str | None:
    """``path`` as a root-relative POSIX path for JupyterLab, None when outside the root."""
    if not path or not root_dir:
        return None
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(os.path.expanduser(root_dir)))
    except ValueError:
        return None
    return rel.as_posix()


def notebook_answer(name: str, root_dir: str | None) -> dict[str, Any]:
    from pai_magic.core.notebook.results import find_result

    result = find_result(name)
    if result is None:
        raise NotFoundError(f"No notebook run {name} is recorded on this machine: only runs started here "
                            "(pai-magic run-notebook, %pai_run_notebook, Notebook Jobs) have one.")
    return {"job": result.job, "state": result.state,
            "path": relative_to_root(result.notebook, root_dir), "absolute_path": result.notebook,
            "html_path": relative_to_root(result.html, root_dir), "failed_cell": result.failed_cell,
            "message": result.message, "out_dir": result.out_dir, "warnings": list(result.warnings),
            "outputs": [{"name": rel, "path": relative_to_root(os.path.join(result.out_dir, rel), root_dir)}
                        for rel in result.outputs],
            "outputs_message": result.outputs_message}


class NotebookResultHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        check_job_name(name)
        root = self.settings.get("server_root_dir") or getattr(self.serverapp, "root_dir", None)
        self.reply(await self.call(notebook_answer, name, root))


def notebook_routes(prefix: str) -> list[tuple[str, type]]:
    """Registered before :func:`handlers.route_table` (whose last route catches everything)."""
    return [(rf"{prefix}/jobs/(?P<name>[^/]+)/notebook", NotebookResultHandler)]
