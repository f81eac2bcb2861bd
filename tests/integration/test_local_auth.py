"""Login, tokens and users of the embedded backend, over real HTTP (rest-server semantics)."""
from __future__ import annotations

import base64

import pytest
import requests

T = 10


def login(backend, user=None, password=None):
    return requests.post(f"{backend.api}/authn/basic/login",
                         json={"username": user or backend.user, "password": password or backend.password}, timeout=T)


def test_info_needs_no_token(local_backend):
    resp = requests.get(f"{local_backend.api}/info", timeout=T)
    assert resp.status_code == 200
    assert resp.json() == {"name": "PAI RESTful API", "version": "v1.8.1", "launcherType": "k8s",
                           "authnMethod": "basic"}


def test_login_gives_a_working_token(local_backend):
    resp = login(local_backend)
    assert resp.status_code == 200
    body = resp.json()
    assert body["user"] == local_backend.user and body["admin"] is True and body["token"]
    check = requests.get(f"{local_backend.api}/tokens/check", headers=local_backend.headers(body["token"]), timeout=T)
    assert check.status_code == 200
    assert check.json()["username"] == local_backend.user
    assert check.json()["application"] is False


def test_login_accepts_a_form_body_like_the_server(local_backend):
    resp = requests.post(f"{local_backend.api}/authn/basic/login",
                         data={"username": local_backend.user, "password": local_backend.password}, timeout=T)
    assert resp.status_code == 200 and resp.json()["token"]


def test_wrong_password_is_refused_with_the_servers_code(local_backend):
    resp = login(local_backend, password="not-the-password")
    # the rest-server answers 400 IncorrectPasswordError (tokenController.get), not 401
    assert resp.status_code == 400
    assert resp.json() == {"code": "IncorrectPasswordError", "message": "Password is incorrect."}
    unknown = login(local_backend, user="nobody-here")
    assert unknown.status_code == 400 and unknown.json()["code"] == "NoUserError"
    short = login(local_backend, password="abc")
    assert short.status_code == 400 and short.json()["code"] == "InvalidParametersError"


PROTECTED = [
    ("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/u~j"), ("GET", "/jobs/u~j/config"),
    ("PUT", "/jobs/u~j/executionType"), ("GET", "/jobs/u~j/events"),
    ("GET", "/jobs/u~j/attempts/0/taskRoles/r/taskIndex/0/attempts/0/logs"), ("GET", "/tokens"),
    ("POST", "/tokens/application"), ("GET", "/tokens/check"), ("GET", "/users/x"), ("PUT", "/users/me"),
    ("GET", "/virtual-clusters"), ("GET", "/storages"), ("GET", "/storages/default"),
    ("DELETE", "/authn/basic/logout"),
]


def test_every_protected_route_answers_401_without_or_with_a_bad_token(local_backend):
    forged = local_backend.token[:-4] + ("AAAA" if not local_backend.token.endswith("AAAA") else "BBBB")
    for method, path in PROTECTED:
        for headers, message in (({}, "Guest is not allowed to do this operation."),
                                 ({"Authorization": "Bearer nonsense"}, "Your token is invalid."),
                                 ({"Authorization": f"Bearer {forged}"}, "Your token is invalid.")):
            resp = requests.request(method, local_backend.api + path, headers=headers, timeout=T)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json() == {"code": "UnauthorizedUserError", "message": message}


def test_logout_revokes_the_token(local_backend):
    token = login(local_backend).json()["token"]
    assert requests.delete(f"{local_backend.api}/authn/basic/logout", headers=local_backend.headers(token),
                           timeout=T).status_code == 200
    again = requests.get(f"{local_backend.api}/tokens/check", headers=local_backend.headers(token), timeout=T)
    assert again.status_code == 401


def test_application_token_works_for_jobs_but_not_for_the_profile(local_backend):
    resp = requests.post(f"{local_backend.api}/tokens/application", headers=local_backend.headers(), timeout=T)
    assert resp.status_code == 200 and resp.json()["application"] is True
    app = resp.json()["token"]
    assert requests.get(f"{local_backend.api}/jobs", headers=local_backend.headers(app), timeout=T).status_code == 200
    # the rest-server also takes an application token as Basic user:token
    basic = base64.b64encode(f"{local_backend.user}:{app}".encode()).decode()
    assert requests.get(f"{local_backend.api}/jobs", headers={"Authorization": f"Basic {basic}"},
                        timeout=T).status_code == 200
    body = {"data": {"username": local_backend.user, "extension": {"sshKeys": []}}, "patch": True}
    put = requests.put(f"{local_backend.api}/users/me", json=body, headers=local_backend.headers(app), timeout=T)
    assert put.status_code == 403
    assert put.json() == {"code": "ForbiddenUserError", "message": "Applications are not allowed to do this operation."}
    tokens = requests.get(f"{local_backend.api}/tokens", headers=local_backend.headers(), timeout=T).json()["tokens"]
    assert app in tokens
    revoke = requests.delete(f"{local_backend.api}/tokens/{app}", headers=local_backend.headers(), timeout=T)
    assert revoke.status_code == 200
    assert requests.get(f"{local_backend.api}/jobs", headers=local_backend.headers(app), timeout=T).status_code == 401


def test_users_me_patch_replaces_ssh_keys(fresh_local_backend):
    b = fresh_local_backend
    url = f"{b.api}/users/me"

    def keys():
        resp = requests.get(f"{b.api}/users/{b.user}", headers=b.headers(), timeout=T)
        assert resp.status_code == 200
        info = resp.json()
        assert {"username", "admin", "virtualCluster", "storageConfig", "email", "extension"} <= set(info)
        assert "password" not in info and "password_hash" not in info
        return info["extension"].get("sshKeys")

    assert keys() is None
    k1 = {"title": "laptop", "value": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@x", "time": 1}
    k2 = {"title": "desk", "value": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@x", "time": 2}
    r1 = requests.put(url, json={"data": {"username": b.user, "extension": {"sshKeys": [k1]}}, "patch": True},
                      headers=b.headers(), timeout=T)
    assert r1.status_code == 201 and r1.json() == {"message": f"Update user {b.user} successfully"}
    assert keys() == [k1]
    r2 = requests.put(url, json={"data": {"username": b.user, "extension": {"sshKeys": [k2]}}, "patch": True},
                      headers=b.headers(), timeout=T)
    assert r2.status_code == 201
    assert keys() == [k2]  # replaced, not appended
    # other extension keys survive a patch that does not name them
    requests.put(url, json={"data": {"username": b.user, "extension": {"note": "x"}}, "patch": True},
                 headers=b.headers(), timeout=T)
    assert keys() == [k2]
    other = requests.put(url, json={"data": {"username": "someone-else", "extension": {}}, "patch": True},
                         headers=b.headers(), timeout=T)
    assert other.status_code == 403 and other.json()["code"] == "ForbiddenUserError"
    no_patch = requests.put(url, json={"data": {"username": b.user, "extension": {}}}, headers=b.headers(), timeout=T)
    assert no_patch.status_code == 400 and no_patch.json()["code"] == "InvalidParametersError"
    missing = requests.get(f"{b.api}/users/nobody", headers=b.headers(), timeout=T)
    assert missing.status_code == 400 and missing.json()["code"] == "NoUserError"  # 400, as the rest-server
    # GET /users/me is not a route of the rest-server: "me" is taken as a user name
    me = requests.get(f"{b.api}/users/me", headers=b.headers(), timeout=T)
    assert me.status_code == 400 and me.json()["code"] == "NoUserError"


def test_virtual_clusters_and_storages(local_backend):
    h = local_backend.headers()
    vcs = requests.get(f"{local_backend.api}/virtual-clusters", headers=h, timeout=T).json()
    assert list(vcs) == ["default"]
    import os

    assert vcs["default"]["resourcesTotal"]["cpu"] == os.cpu_count()
    assert vcs["default"]["resourcesTotal"]["gpu"] == 0
    missing_vc = requests.get(f"{local_backend.api}/virtual-clusters/nope", headers=h, timeout=T)
    assert missing_vc.status_code == 404 and missing_vc.json()["code"] == "NoVirtualClusterError"
    st = requests.get(f"{local_backend.api}/storages", headers=h, timeout=T).json()
    assert {"name": "default", "share": True, "volumeName": "default-volume", "default": True} in st["storages"]
    one = requests.get(f"{local_backend.api}/storages/default", headers=h, timeout=T).json()
    assert one["type"] == "nfs" and one["data"]["server"] == "127.0.0.1"
    assert one["data"]["path"] == str((local_backend.data_dir / "storages" / "default").resolve())
    nope = requests.get(f"{local_backend.api}/storages/nope", headers=h, timeout=T)
    assert nope.status_code == 404 and nope.json() == {"code": "NoStorageError", "message": "Storage nope is not found."}


def test_restart_keeps_users_and_tokens(fresh_local_backend):
    b = fresh_local_backend
    token = b.token
    b.stop()
    b.start()
    assert requests.get(f"{b.api}/tokens/check", headers=b.headers(token), timeout=T).status_code == 200


def test_default_user_gets_a_generated_password_saved_0600_never_printed(tmp_path):
    import getpass
    import os
    import stat
    import subprocess
    import sys
    from pathlib import Path

    from pai_magic.local import find_running, read_credentials

    data = tmp_path / "data"
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic.local", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(repo))
    try:
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        user, password = read_credentials(data)
        assert user == getpass.getuser()
        assert stat.S_IMODE((data / "credentials.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert find_running(data) == url
        resp = requests.post(f"{url}/rest-server/api/v2/authn/basic/login",
                             json={"username": user, "password": password}, timeout=T)
        assert resp.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert password not in (out + err).decode()
    assert out.decode().strip() == ""  # only the URL line, read above
    assert not (data / "server.json").exists()


def test_client_reads_an_unknown_user_as_not_found(local_backend):
    """The rest-server says 'no such user' with 400 NoUserError; the client makes it a NotFoundError."""
    from pai_magic.core import profiles
    from pai_magic.core.client import PaiClient
    from pai_magic.core.errors import NotFoundError

    prof = profiles.Profile(name="t", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as c:
        with pytest.raises(NotFoundError) as err:
            c.get_user("nobody")
        assert err.value.code == "NoUserError" and "\n" not in str(err.value)
        assert c.get_user()["username"] == local_backend.user
