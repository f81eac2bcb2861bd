"""A real Jupyter server (or JupyterLab) subprocess with the pai_magic extension enabled.

Everything Jupyter keeps (config, data, runtime, IPython) lives in a temporary folder, the
extension is enabled by the repository's own ``jupyter-config`` folder (the file the wheel
ships), and pai_magic's profile file goes to the given ``PAI_MAGIC_CONFIG_DIR``, so a test
never touches the developer's Jupyter or profiles. Stopped by PID (its process group).
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.fixtures.services import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


class JupyterProcess:
    """``jupyter server`` / ``jupyter lab`` on 127.0.0.1:<free port>, token auth."""

    def __init__(self, root: Path, pai_config_dir: Path, *, lab: bool = False,
                 extra_config: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 labextension_dir: Path | None = None, base_url: str = "/") -> None:
        self.root = root
        self.pai_config_dir = pai_config_dir
        self.lab = lab
        self.extra_config = extra_config or {}
        self.extra_env = env or {}
        self.labextension_dir = labextension_dir
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{self.base_url}"
        self.proc: subprocess.Popen | None = None
        self.log_path = root / ("lab.log" if lab else "server.log")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"

    # ---- lifecycle -------------------------------------------------------------------------

    def _prepare_dirs(self) -> dict[str, str]:
        dirs = {name: self.root / name for name in ("jupyter-config", "jupyter-data", "jupyter-runtime",
                                                    "ipython", "notebooks", "home")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        config = {"ServerApp": {"jpserver_extensions": {"pai_magic.server": True}}}
        for section, values in self.extra_config.items():
            config.setdefault(section, {}).update(values)
        (dirs["jupyter-config"] / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
        if self.labextension_dir is not None:
            target = dirs["jupyter-data"] / "labextensions" / "pai-magic"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(self.labextension_dir, target_is_directory=True)
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(dirs["jupyter-config"]),
            # the repository's enabling file, exactly as the wheel installs it
            "JUPYTER_CONFIG_PATH": str(REPO / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(dirs["jupyter-data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["jupyter-runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PAI_MAGIC_CONFIG_DIR": str(self.pai_config_dir),
            "PYTHONPATH": os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
        })
        for var in ("PAI_URL", "PAI_USER", "PAI_TOKEN", "PAI_PROFILE"):
            env.pop(var, None)
        env.update(self.extra_env)
        return {"env": env, "notebooks": str(dirs["notebooks"])}  # type: ignore[dict-item]

    def start(self) -> "JupyterProcess":
        prepared = self._prepare_dirs()
        app = "jupyterlab" if self.lab else "jupyter_server"
        cmd = [sys.executable, "-m", app, "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.base_url={self.base_url}",
               f"--ServerApp.root_dir={prepared['notebooks']}"]
        if self.lab:
            cmd.append("--LabApp.news_url=None")
            cmd.append("--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=prepared["env"], cwd=prepared["notebooks"],  # type: ignore[arg-type]
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.get("pai-magic/api/status").status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jupyter did not answer within {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=15)
        self.session.close()
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # ---- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.session.request(method, self.url + path.lstrip("/"), **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)
