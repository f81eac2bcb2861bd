"""Schemathesis over OpenPAI's own OpenAPI file against the embedded backend (issue 12).

Every operation of ``data/openpai-rest-api.yaml`` (MIT, microsoft/pai) gets a few generated
requests, valid and invalid, with an admin's token. What must hold: no answer is a 5xx; on
the routes the backend implements, every answer the file documents matches its schema;
routes it does not implement answer ``404 {"code": "NoApiError"}`` as the rest-server's
catch-all does. Examples are bounded (a few per operation) to keep the run well under two
minutes on a loaded machine.

Adjustments to the file, each a documented fact rather than a loosening (the same as in
test_local_openapi.py): the JobProtocol schema is an external URL (no network here), so an
open object; ``containerPorts`` values are strings on a real cluster; the error-code enum
gains the codes the rest-server's source raises but the file forgot. ``DELETE
/authn/basic/logout`` is left out: it would revoke the token every other case uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.fixtures.local_backend import LocalBackendProcess

SPEC_PATH = Path(__file__).with_name("data") / "openpai-rest-api.yaml"
T = 30

#: what the embedded backend answers (method, OpenAPI path); the rest must be 404 NoApiError
IMPLEMENTED = {
    ("GET", "/api/v2/info"), ("GET", "/api/v2/tokens"), ("DELETE", "/api/v2/tokens/{token}"),
    ("POST", "/api/v2/tokens/application"), ("POST", "/api/v2/authn/basic/login"),
    ("DELETE", "/api/v2/authn/basic/logout"),
    ("POST", "/api/v2/users"), ("GET", "/api/v2/users"), ("PUT", "/api/v2/users"), ("PUT", "/api/v2/users/me"),
    ("GET", "/api/v2/users/{user}"), ("DELETE", "/api/v2/users/{user}"),
    ("GET", "/api/v2/virtual-clusters"), ("GET", "/api/v2/virtual-clusters/{vc}"),
    ("GET", "/api/v2/storages"), ("GET", "/api/v2/storages/{storage}"),
    ("POST", "/api/v2/jobs"), ("GET", "/api/v2/jobs"), ("GET", "/api/v2/jobs/{user}~{job}"),
    ("GET", "/api/v2/jobs/{user}~{job}/attempts/{jobAttemptId}"), ("GET", "/api/v2/jobs/{user}~{job}/config"),
    ("PUT", "/api/v2/jobs/{user}~{job}/executionType"), ("GET", "/api/v2/jobs/{user}~{job}/events"),
    ("GET", "/api/v2/jobs/{user}~{job}/attempts/{jobAttemptId}/taskRoles/{taskRoleName}/taskIndex/{taskIndex}"
            "/attempts"),
    ("GET", "/api/v2/jobs/{user}~{job}/attempts/{jobAttemptId}/taskRoles/{taskRoleName}/taskIndex/{taskIndex}"
            "/attempts/{taskAttemptId}/logs"),
}
SKIPPED = {("DELETE", "/api/v2/authn/basic/logout")}


def adjusted_spec() -> dict[str, Any]:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    spec["components"]["schemas"]["JobProtocol"] = {"type": "object"}
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict):
                op.pop("operationId", None)  # the file reuses getJob twice
    _untype_container_ports(spec)
    # the file's list of error codes is incomplete: the rest-server v1.8 source raises these too
    # (NoTaskError is even one of the file's own responses); the last two are the embedded
    # backend's own answers to an oversized body (413) and a full data disk (507)
    spec["components"]["schemas"]["Response"]["properties"]["code"]["enum"] += [
        "InvalidProtocolError", "NoStorageError", "NoTaskLogError", "NoTaskError",
        "PayloadTooLargeError", "InsufficientStorageError"]
    return spec


def _untype_container_ports(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "containerPorts" and isinstance(value, dict):
                node[key] = {"type": "object"}
            else:
                _untype_container_ports(value)
    elif isinstance(node, list):
        for value in node:
            _untype_container_ports(value)


@pytest.fixture(scope="module")
def st_backend(tmp_path_factory: pytest.TempPathFactory):
    b = LocalBackendProcess(tmp_path_factory.mktemp("schemathesis") / "data")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def st_schema(st_backend):
    spec = adjusted_spec()
    spec["servers"] = [{"url": st_backend.url + "/rest-server"}]
    loaded = schemathesis.openapi.from_dict(spec)
    loaded.config.update(base_url=st_backend.url + "/rest-server")
    return loaded


schema = schemathesis.pytest.from_fixture("st_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_5xx_and_answers_match_the_reference(case, st_backend):
    key = (case.operation.method.upper(), case.operation.path)
    if key in SKIPPED:
        pytest.skip("would revoke the token the other cases use")
    response = case.call(headers={"Authorization": f"Bearer {st_backend.token}"}, timeout=T)
    assert response.status_code < 500, (key, response.status_code, response.text[:300])
    if key in IMPLEMENTED:
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    else:
        assert response.status_code == 404, (key, response.status_code, response.text[:300])
        assert response.json()["code"] == "NoApiError"


def test_the_generated_run_left_the_backend_usable(st_backend):
    b = st_backend
    assert requests.get(f"{b.api}/jobs", headers=b.headers(), timeout=T).status_code == 200
    login = requests.post(f"{b.api}/authn/basic/login", json={"username": b.user, "password": b.password},
                          timeout=T)
    assert login.status_code == 200
