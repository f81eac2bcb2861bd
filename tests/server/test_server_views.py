"""The server extension's routes behind the sidebar's job views, clone, YAML, images,
storage, profiles and logout: a real Jupyter server, the embedded backend, a real
docker-registry; every answer checked against openapi.yaml and scanned for secrets."""
from __future__ import annotations

import uuid

import pytest
import requests
import yaml

from pai_magic.local.seed import seed_jobs
from tests.server.conftest import CheckedJupyter


@pytest.fixture(scope="module")
def seeded(local_backend):
    """45 finished jobs (states SUCCEEDED, FAILED, STOPPED in turn) and one kernel job."""
    prefix = f"page{uuid.uuid4().hex[:6]}"
    names = seed_jobs(local_backend.data_dir, local_backend.user, 45, prefix=prefix)
    kernel = seed_jobs(local_backend.data_dir, local_backend.user, 1, prefix=f"pai-kernel-{prefix[::-1]}")
    return prefix, names, kernel[0]


def test_jobs_page_filter_and_total(api: CheckedJupyter, seeded):
    prefix, names, _kernel = seeded
    first = api.get(f"jobs?keyword={prefix}-&limit=20").json()
    assert first["total"] == 45 and len(first["jobs"]) == 20 and first["offset"] == 0
    assert first["jobs"][0]["name"] == names[-1]  # newest first
    last = api.get(f"jobs?keyword={prefix}-&limit=20&offset=40").json()
    assert last["total"] == 45 and [j["name"] for j in last["jobs"]] == names[4::-1]
    failed = api.get(f"jobs?keyword={prefix}-&state=FAILED&limit=100").json()
    assert failed["total"] == 15 and {j["state"] for j in failed["jobs"]} == {"FAILED"}
    # everyone's jobs include ours; another user's are none of ours
    everyone = api.get(f"jobs?keyword={prefix}-&user=*&limit=5").json()
    assert everyone["total"] == 45
    assert api.get(f"jobs?keyword={prefix}-&user=nobody_else").json()["total"] == 0
    assert api.get(f"jobs?keyword={prefix}-&vc=default&limit=1").json()["total"] == 45


def test_job_kind_is_labelled(api: CheckedJupyter, seeded):
    prefix, names, kernel = seeded
    rows = api.get(f"jobs?keyword={prefix}-&limit=100").json()["jobs"]
    rows += api.get(f"jobs?keyword={kernel}").json()["jobs"]
    by_name = {r["name"]: r for r in rows}
    assert by_name[kernel]["kind"] == "kernel" and by_name[kernel]["kindLabel"] == "kernel"
    assert by_name[names[0]]["kind"] is None and by_name[names[0]]["kindLabel"] == ""
    # a narrow list shows the name without the prefix its kind label already says
    assert by_name[kernel]["shortName"] == kernel.removeprefix("pai-kernel-")
    assert by_name[names[0]]["shortName"] == names[0]
    detail = api.get(f"jobs/{kernel}").json()
    assert detail["kind"] == "kernel"
    assert all("attemptId" in t for t in detail["tasks"])


@pytest.mark.parametrize("query, field", [
    ("state=BOGUS", "state"), ("user=not%20a%20user", "user"), ("offset=-1", None), ("limit=0", None),
])
def test_bad_list_queries_name_the_field(api: CheckedJupyter, query, field):
    resp = api.get(f"jobs?{query}")
    assert resp.status_code == 400
    assert resp.json()["field"] == field


def test_clone_gives_back_the_form_and_yaml_round_trips(api: CheckedJupyter):
    spec = {"name": "clone_me", "image": "ubuntu:22.04", "commands": ["echo one", "echo 'two words'"],
            "virtualCluster": "default", "gpu": 0, "cpu": 2, "memoryMB": 1024, "instances": 1, "retry": 1,
            "ssh": False, "keepAlive": False, "storages": ["default:/data"]}
    resp = api.post("jobs", {"spec": spec})
    assert resp.status_code == 202, resp.text
    name = resp.json()["name"]
    config = api.get(f"jobs/{name}/config").json()
    assert config["name"] == name and config["specMessage"] is None
    assert config["spec"] == spec
    assert yaml.safe_load(config["yaml"])["name"] == name

    # export the form as YAML, import that YAML: the same form
    exported = api.post("protocol", {"spec": spec}).json()
    job = yaml.safe_load(exported["yaml"])
    assert job["taskRoles"]["taskrole"]["resourcePerInstance"] == {"cpu": 2, "memoryMB": 1024, "gpu": 0}
    imported = api.post("protocol", {"yaml": exported["yaml"]}).json()
    assert imported["spec"] == spec and exported["spec"] == spec

    # keep-alive and SSH survive the trip as separate choices
    both = dict(spec, ssh=True, keepAlive=True)
    again = api.post("protocol", {"yaml": api.post("protocol", {"spec": both}).json()["yaml"]}).json()
    assert again["spec"]["ssh"] is True and again["spec"]["keepAlive"] is True
    assert again["spec"]["commands"] == spec["commands"]


def test_yaml_the_form_cannot_hold_says_why(api: CheckedJupyter):
    two_roles = {"protocolVersion": 2, "name": "two", "type": "job",
                 "prerequisites": [{"name": "img", "type": "dockerimage", "uri": "ubuntu"}],
                 "taskRoles": {r: {"instances": 1, "dockerImage": "img", "commands": ["true"],
                                   "resourcePerInstance": {"cpu": 1, "memoryMB": 512, "gpu": 0}}
                               for r in ("a", "b")}}
    answer = api.post("protocol", {"yaml": yaml.safe_dump(two_roles)}).json()
    assert answer["spec"] is None and "2 task roles" in answer["specMessage"]
    bad = api.post("protocol", {"yaml": "protocolVersion: 2\nname: x\n"})
    assert bad.status_code == 400 and "taskRoles" in bad.json()["error"]
    empty = api.post("protocol", {"yaml": "  "})
    assert empty.status_code == 400 and empty.json()["field"] == "yaml"


def test_storages_listed_with_mount_state(api: CheckedJupyter):
    rows = api.get("storages").json()["storages"]
    default = next(r for r in rows if r["name"] == "default")
    assert default["default"] is True and default["mountPath"] == "/mnt/default"
    assert default["mounted"] is False and default["usage"] is None
    assert default["mountCommand"].startswith("sudo mount -t nfs")


def test_images_from_a_real_registry(api: CheckedJupyter, registry, monkeypatch):
    from pai_magic.core.profiles import update_profile
    from tests.fixtures.registry import seed_repositories

    seed_repositories(registry.url, ["team/train", "team/serve"], tags=("v1", "v2"))
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(api.proc.pai_config_dir))
    profile = api.get("status").json()["profile"]
    update_profile(profile, registry_url=registry.url)
    try:
        listing = api.get("images").json()
        assert listing["registry"] == registry.host
        repos = {r["repository"]: r["tags"] for r in listing["repositories"]}
        assert repos["team/train"] == ["v1", "v2"] and "team/serve" in repos
        assert [r["repository"] for r in api.get("images?filter=team/tr*").json()["repositories"]] == ["team/train"]
        tags = api.get("images/tags?repository=team/train").json()["tags"]
        assert {t["tag"] for t in tags} == {"v1", "v2"}
        v1 = next(t for t in tags if t["tag"] == "v1")
        assert v1["reference"] == f"{registry.host}/team/train:v1"
        assert v1["platforms"] == ["linux/amd64"] and v1["digest"].startswith("sha256:")
        assert v1["size"] == 0 and v1["error"] is None
        missing = api.get("images/tags?repository=team/nothing")
        assert missing.status_code == 404
        assert api.get("images/tags?repository=Not%20Valid").status_code == 400
    finally:
        update_profile(profile, registry_url=None)


def test_logout_and_switch_profile(jupyter_fresh: CheckedJupyter, local_backend):
    api = jupyter_fresh
    first = api.login(local_backend)
    assert api.post("login", {"url": local_backend.url, "user": local_backend.user,
                              "password": local_backend.password, "profile": "second"}).status_code == 200
    for token in api.saved_tokens():
        api.add_secret(token)
    listing = api.get("profiles").json()
    assert listing["active"] == "second"
    assert {p["name"]: p["loggedIn"] for p in listing["profiles"]} == {first["profile"]: True, "second": True}

    switched = api.post("profiles", {"profile": first["profile"]}).json()
    assert switched["profile"] == first["profile"] and switched["loggedIn"] is True
    assert api.get("status").json()["profile"] == first["profile"]
    unknown = api.post("profiles", {"profile": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]

    bad = api.post("logout", {"revoke": "yes"})
    assert bad.status_code == 400 and bad.json().get("field") == "revoke"
    stored = yaml.safe_load((api.proc.pai_config_dir / "profiles.yaml").read_text())["profiles"]
    token = stored[first["profile"]]["token"]
    out = api.post("logout", {}).json()
    assert out["loggedIn"] is False and "log in below" in out["message"] and "revoked" in out["message"]
    assert api.get("jobs").status_code == 401
    # a real logout: the cluster refuses the old token now (the sidebar's login got it with a password)
    assert requests.get(f"{local_backend.api}/jobs", headers=local_backend.headers(token), timeout=30).status_code == 401
    assert {p["name"]: p["loggedIn"] for p in api.get("profiles").json()["profiles"]}[first["profile"]] is False


def test_storage_mounted_here_shows_where_and_usage(api: CheckedJupyter, monkeypatch):
    """A real mount (the machine's /dev/shm tmpfs) recorded as pai_magic's mount of a storage:
    the answer says where it is mounted and how full it is, read with statvfs."""
    from pai_magic.core.storage import state

    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(api.proc.pai_config_dir))
    state.add_record(state.MountRecord("/dev/shm", "nfs", "127.0.0.1:/elsewhere", storage="default"))
    try:
        rows = api.get("storages").json()["storages"]
        default = next(r for r in rows if r["name"] == "default")
        assert default["mounted"] is True and default["mountpoint"] == "/dev/shm"
        assert default["mountedBy"] == "pai_magic"
        usage = default["usage"]
        assert usage["total"] > 0 and 0 <= usage["fractionUsed"] <= 1 and "/dev/shm" in usage["message"]
    finally:
        state.remove_record("/dev/shm")


@pytest.mark.parametrize("method, path, body, status, field", [
    ("GET", "images/tags", None, 400, "repository"),
    ("POST", "protocol", {"spec": {"image": "x", "commands": ["y"]}, "yaml": "z"}, 400, None),
    ("POST", "protocol", {"spec": "not an object"}, 400, None),
    ("POST", "profiles", {}, 400, "profile"),
    ("POST", "profiles", {"profile": 3}, 400, None),
    ("GET", "jobs/bad%20name/config", None, 400, None),
    ("GET", "jobs/no_such_job_here/config", None, 404, None),
])
def test_bad_input_on_the_view_routes(api: CheckedJupyter, method, path, body, status, field):
    resp = api.get(path) if method == "GET" else api.post(path, body)
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field
