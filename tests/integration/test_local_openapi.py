"""Each answer the core relies on, validated against the rest-server's own OpenAPI file.

openapi-core checks status, content type and body schema of real answers from the embedded
backend. Adjustments to the reference file, each a documented fact, not a loosening:
the JobProtocol schema is an external URL (no network here), so it is an open object;
``containerPorts`` is declared an untyped object (real answers hold strings); the logs
route documents ``tailMode`` while the server reads ``tail-mode`` (only responses are
validated, so that query name does not matter here).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from pai_magic.core.protocol import unique_job_name

SPEC_PATH = Path("/work/shared/reference/openpai-rest-api.yaml")
T = 10


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"reference API file missing: {SPEC_PATH}")
    spec = yaml.safe_load(SPEC_PATH.read_text())
    spec["components"]["schemas"]["JobProtocol"] = {"type": "object"}
    # the reference file reuses the operationId getJob for two paths; make ids unique
    seen: set[str] = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                if op["operationId"] in seen:
                    op["operationId"] += "_" + method + path.replace("/", "_").replace("{", "").replace("}", "")
                seen.add(op["operationId"])
    return spec


def _yaml(value: bytes, **_params: str) -> Any:
    return yaml.safe_load(value)


@pytest.fixture
def check(local_backend, spec_dict):
    spec = copy.deepcopy(spec_dict)
    spec["servers"] = [{"url": local_backend.url + "/rest-server"}]
    # the config route is labelled text/yaml (its body is JSON text, which YAML reads)
    api = OpenAPI.from_dict(spec, config=Config(extra_media_type_deserializers={"text/yaml": _yaml}))

    def validate(resp: requests.Response, status: int = 200) -> requests.Response:
        assert resp.status_code == status, (resp.request.method, resp.url, resp.text)
        api.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))
        return resp

    return validate


def _job(name: str, commands: list[str]) -> dict:
    return {"protocolVersion": 2, "name": name, "type": "job",
            "prerequisites": [{"name": "i", "type": "dockerimage", "uri": "ubuntu:22.04"}],
            "secrets": {"token": "abc"},
            "taskRoles": {"main": {"instances": 2, "dockerImage": "i",
                                   "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0, "ports": {"x": 2}},
                                   "commands": commands}}}


def test_answers_match_the_reference_api(local_backend, check):
    b = local_backend
    h = b.headers()
    check(requests.get(f"{b.api}/info", timeout=T))
    login = check(requests.post(f"{b.api}/authn/basic/login",
                                json={"username": b.user, "password": b.password}, timeout=T))
    token = login.json()["token"]
    check(requests.get(f"{b.api}/tokens", headers=h, timeout=T))
    app = check(requests.post(f"{b.api}/tokens/application", headers=h, timeout=T)).json()["token"]
    check(requests.delete(f"{b.api}/tokens/{app}", headers=h, timeout=T))
    check(requests.get(f"{b.api}/users/{b.user}", headers=h, timeout=T))
    check(requests.put(f"{b.api}/users/me", headers=h, timeout=T,
                       json={"data": {"username": b.user, "extension": {"sshKeys": []}}, "patch": True}), 201)
    check(requests.get(f"{b.api}/virtual-clusters", headers=h, timeout=T))
    check(requests.get(f"{b.api}/virtual-clusters/default", headers=h, timeout=T))
    check(requests.get(f"{b.api}/storages", headers=h, timeout=T))
    check(requests.get(f"{b.api}/storages", params={"default": "true"}, headers=h, timeout=T))
    check(requests.get(f"{b.api}/storages/default", headers=h, timeout=T))

    name = unique_job_name("openapi")
    check(b.submit(_job(name, ["echo hi", "sleep 1"])), 202)
    fw = f"{b.user}~{name}"
    check(requests.get(f"{b.api}/jobs/{fw}", headers=h, timeout=T))  # waiting or running
    b.wait(name, ("RUNNING", "SUCCEEDED"))
    running = check(requests.get(f"{b.api}/jobs/{fw}", headers=h, timeout=T)).json()
    assert all(isinstance(v, str) for t in running["taskRoles"]["main"]["taskStatuses"]
               for v in t["containerPorts"].values())
    b.wait(name)
    check(requests.get(f"{b.api}/jobs/{fw}", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs/{fw}/attempts/0", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs/{fw}/config", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs/{fw}/events", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs/{fw}/attempts/0/taskRoles/main/taskIndex/1/attempts", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs/{fw}/attempts/0/taskRoles/main/taskIndex/1/attempts/0/logs",
                       params={"tail-mode": "true"}, headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs", headers=h, timeout=T))
    check(requests.get(f"{b.api}/jobs", params={"withTotalCount": "true", "limit": 5, "offset": 0,
                                                "order": "submissionTime,DESC", "username": b.user},
                       headers=h, timeout=T))
    stop_name = unique_job_name("openapi-stop")
    check(b.submit(_job(stop_name, ["sleep 300"])), 202)
    check(requests.put(f"{b.api}/jobs/{b.user}~{stop_name}/executionType", json={"value": "STOP"},
                       headers=h, timeout=T), 202)
    b.wait(stop_name, ("STOPPED",))
    check(requests.get(f"{b.api}/jobs/{b.user}~{stop_name}", headers=h, timeout=T))

    # error answers whose codes the reference file lists
    check(requests.get(f"{b.api}/tokens", timeout=T), 401)
    check(requests.get(f"{b.api}/jobs/{b.user}~missing-job", headers=h, timeout=T), 404)
    check(b.submit(_job(name, ["true"])), 409)
    check(requests.get(f"{b.api}/virtual-clusters/none", headers=h, timeout=T), 404)
    check(requests.post(f"{b.api}/tokens/application", headers=h, timeout=T))
    check(requests.delete(f"{b.api}/authn/basic/logout", headers=b.headers(token), timeout=T))
