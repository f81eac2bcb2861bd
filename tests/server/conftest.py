"""Fixtures for the server extension tests: a real Jupyter server subprocess per module,
talking to the embedded backend over real HTTP, every answer checked against
pai_magic/server/openapi.yaml and scanned for secrets."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

import pytest
import requests

from tests.server.jupyter_process import REPO, JupyterProcess

OPENAPI = REPO / "pai_magic" / "server" / "openapi.yaml"
API = "pai-magic/api/"


class CheckedJupyter:
    """Requests to the extension; each answer is validated against the OpenAPI file, must be
    JSON, and must not contain any of ``secrets`` (token, password)."""

    def __init__(self, proc: JupyterProcess, secrets: Iterable[str] = ()) -> None:
        from openapi_core import OpenAPI

        self.proc = proc
        self.secrets = [s for s in secrets if s]
        self.openapi = OpenAPI.from_file_path(str(OPENAPI))
        self.responses: list[requests.Response] = []

    def add_secret(self, value: str) -> None:
        if value:
            self.secrets.append(value)

    def check(self, resp: requests.Response, *, validate: bool = True) -> requests.Response:
        self.responses.append(resp)
        assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.text[:200]
        body = resp.json()
        for secret in self.secrets:
            assert secret not in resp.text, f"a secret leaked into {resp.request.method} {resp.url}"
        if resp.status_code >= 400:
            assert isinstance(body.get("error"), str) and body["error"], body
            assert "\n" not in body["error"] and len(body["error"]) <= 300, body["error"]
            assert "Traceback" not in resp.text
        if validate:
            from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

            self.openapi.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))
        return resp

    def get(self, path: str, **kw: Any) -> requests.Response:
        validate = kw.pop("validate", True)
        return self.check(self.proc.get(API + path, **kw), validate=validate)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        validate = kw.pop("validate", True)
        if body is not None:
            kw["data"] = json.dumps(body) if not isinstance(body, (str, bytes)) else body
            kw.setdefault("headers", {})["Content-Type"] = "application/json"
        return self.check(self.proc.post(API + path, **kw), validate=validate)

    # ---- job helpers -------------------------------------------------------------------

    def wait_state(self, name: str, states: set[str], timeout: float = 120.0) -> dict[str, Any]:
        """Poll GET jobs/<name> until its state is in ``states`` (bounded)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.get(f"jobs/{name}").json()
            if last["state"] in states:
                return last
            time.sleep(0.3)
        raise AssertionError(f"job {name} stayed {last.get('state')} (wanted {sorted(states)}): {last}")

    def login(self, backend: Any) -> dict[str, Any]:
        resp = self.post("login", {"url": backend.url, "user": backend.user, "password": backend.password})
        assert resp.status_code == 200, resp.text
        for token in self.saved_tokens():
            self.add_secret(token)
        return resp.json()

    def saved_tokens(self) -> list[str]:
        """Tokens the server saved in its profile file (they must never come back in answers)."""
        import yaml

        path = self.proc.pai_config_dir / "profiles.yaml"
        if not path.exists():
            return []
        data = yaml.safe_load(path.read_text()) or {}
        return [p.get("token") for p in (data.get("profiles") or {}).values() if p.get("token")]


def _start(tmp: Path, **kw: Any) -> JupyterProcess:
    return JupyterProcess(tmp, tmp / "pai-config", **kw).start()


@pytest.fixture(scope="module")
def jupyter_module(tmp_path_factory, local_backend):
    """One Jupyter server for a test module, its profile folder private to it."""
    proc = _start(tmp_path_factory.mktemp("jupyter"))
    yield CheckedJupyter(proc, [local_backend.token, local_backend.password])
    proc.stop()


@pytest.fixture
def jupyter_fresh(tmp_path, local_backend):
    """A Jupyter server of its own, with no profile: for login-state tests."""
    proc = _start(tmp_path / "jp")
    yield CheckedJupyter(proc, [local_backend.token, local_backend.password])
    proc.stop()


@pytest.fixture
def api(jupyter_module, local_backend):
    """The module's server, logged into the embedded backend."""
    jupyter_module.login(local_backend)
    return jupyter_module
