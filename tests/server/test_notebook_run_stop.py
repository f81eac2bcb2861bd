"""The sidebar's Stop on a notebook run (POST /pai-magic/api/jobs/<job>/stop) keeps what ran.

Before: the route sent a plain STOP, so the cells that had run died with the container. The
run is started from this process (as a kernel of the same machine would: same data and config
folders as the server), detached, then stopped through the real server extension."""
from __future__ import annotations

import os
import time
from pathlib import Path

from pai_magic.core.client import PaiClient
from pai_magic.core.notebook import NotebookRunSpec, find_result
from pai_magic.core.notebook.run import follow_run, prepare_run, submit_run
from pai_magic.core.profiles import Profile, save_profile
from tests.notebook.conftest import outputs_text, write_notebook
from tests.server.conftest import CheckedJupyter
from tests.server.jupyter_process import JupyterProcess


def test_sidebar_stop_of_a_notebook_run_keeps_what_ran(tmp_path, local_backend):
    profile = Profile(name="local", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    save_profile(profile)
    proc = JupyterProcess(tmp_path / "jp", Path(os.environ["PAI_MAGIC_CONFIG_DIR"])).start()
    try:
        api = CheckedJupyter(proc, [local_backend.token, local_backend.password])
        nb = write_notebook(tmp_path / "side.ipynb", "print('ran first', flush=True)", "import time\ntime.sleep(300)")
        with PaiClient(profile) as client:
            run = prepare_run(NotebookRunSpec(notebook=str(nb), image="python:3.11", out_root=str(tmp_path / "out")))
            full = submit_run(client, run)
            assert follow_run(client, run, detach_when_running=True).state == "RUNNING"
        deadline = time.monotonic() + 120
        while "cell 2 of 2" not in local_backend.log_text(run.name, "taskrole"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        resp = api.post(f"jobs/{run.name}/stop", {})
        assert resp.status_code == 202, resp.text
        assert local_backend.wait(run.name)["jobStatus"]["state"] == "STOPPED"
        result = find_result(full)
        assert result is not None and result.state == "STOPPED" and result.notebook, result
        assert "ran first" in outputs_text(result.notebook)
    finally:
        proc.stop()
