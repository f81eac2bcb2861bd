"""Cluster-version differences the embedded backend (a v1.8 server) cannot show.

A FAKE OpenPAI v1.0 cluster on a real loopback socket: it answers ``GET /jobs`` with a bare
array and ignores paging and filters (as clusters before v1.2 do), has no ``tokens/check``
(added in v1.6), and labels a JSON job config as YAML.
"""
from __future__ import annotations

import json

import pytest

from pai_magic.core.client import PaiClient, parse_version, token_claims
from pai_magic.core.errors import AuthError
from pai_magic.core.profiles import Profile
from tests.unit.test_http import API, FakeCluster, reply

JOBS = [
    {"name": f"job{i}", "username": "alice" if i % 2 else "bob", "state": "FAILED" if i % 3 == 0 else "SUCCEEDED",
     "virtualCluster": "default" if i < 5 else "vc2", "submissionTime": 1000 + i, "totalGpuNumber": 1}
    for i in range(10)
]


@pytest.fixture
def old_cluster():
    fake = FakeCluster()
    fake.routes[("GET", f"{API}/info")] = lambda h: reply(h, 200, {
        "name": "PAI RESTful API", "version": "v1.0.1", "launcherType": "k8s", "authnMethod": "basic"})
    fake.routes[("GET", f"{API}/jobs")] = lambda h: reply(h, 200, JOBS)
    fake.routes[("GET", f"{API}/users/alice")] = lambda h: (
        reply(h, 200, {"username": "alice", "extension": {"jobSSH": {"privateKey": "PRIVATE", "publicKey": "pub"}}})
        if h.headers.get("Authorization") == "Bearer good" else
        reply(h, 401, {"code": "UnauthorizedUserError", "message": "Guest is not allowed to do this operation."}))
    fake.routes[("GET", f"{API}/jobs/alice~job1/config")] = lambda h: reply(
        h, 200, json.dumps({"protocolVersion": 2, "name": "job1", "secrets": "******"}), "text/yaml")
    yield fake
    fake.close()


def client(fake: FakeCluster, token: str = "good") -> PaiClient:
    return PaiClient(Profile(name="old", url=fake.url, user="alice", token=token), backoff=0)


def test_bare_array_list_is_filtered_and_paged_here(old_cluster):
    c = client(old_cluster)
    page = c.list_jobs(username="alice", offset=1, limit=2)
    assert page.total == 5 and [s.name for s in page] == ["job7", "job5"]  # newest first, then paged
    assert {s.name for s in c.list_jobs(state="FAILED")} == {"job0", "job3", "job6", "job9"}
    assert c.list_jobs(vc="vc2").total == 5
    assert c.list_jobs(keyword="JOB1").total == 1
    assert [s.name for s in c.list_jobs(order="jobName,ASC", limit=3)] == ["job0", "job1", "job2"]
    assert len(list(c.iter_jobs(page_size=3))) == 10
    assert old_cluster.count("GET", f"{API}/tokens/check") == 0


def test_token_check_falls_back_to_an_authenticated_call(old_cluster):
    status = client(old_cluster).check_token()
    assert status.valid and status.user == "alice" and status.checked_with == "users/<user>"
    assert old_cluster.count("GET", f"{API}/tokens/check") == 0  # v1.0 has no such endpoint: not asked
    with pytest.raises(AuthError):
        client(old_cluster, token="bad").check_token()


def test_json_config_labelled_yaml_and_private_key_removed(old_cluster):
    c = client(old_cluster)
    assert c.job_config("job1") == {"protocolVersion": 2, "name": "job1", "secrets": "******"}
    user = c.get_user()
    assert user["extension"]["jobSSH"] == {"publicKey": "pub"}


def test_versions_and_claims():
    assert parse_version("v1.8.1") == (1, 8, 1) and parse_version("1.2") == (1, 2) and parse_version("") is None
    assert token_claims("a.eyJ1c2VybmFtZSI6ImFsaWNlIiwiYXBwbGljYXRpb24iOnRydWV9.c") == {
        "username": "alice", "application": True}
    assert token_claims("not-a-jwt") == {}
