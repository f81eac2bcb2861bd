"""Logging out for real (core ``logout`` and ``pai-magic logout``) against the embedded backend
over real HTTP: a password login's token is revoked on the cluster (the backend refuses it
after, 401); a pasted token stays valid unless --revoke; the local token is forgotten even
when the cluster is down or never answers; one stderr line and exit 2 for bad input."""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
import requests
import yaml

from pai_magic.core import auth
from pai_magic.core.errors import InvalidInputError
from pai_magic.core.profiles import load_profile, save_profile
from tests.integration.test_cli import cli  # noqa: F401 - the CLI fixture, shared

pytestmark = pytest.mark.usefixtures("local_backend")


def _profiles_file() -> Path:
    return Path(os.environ["PAI_MAGIC_CONFIG_DIR"]) / "profiles.yaml"


def _stored(name: str) -> dict:
    return (yaml.safe_load(_profiles_file().read_text()) or {})["profiles"][name]


def _accepted(backend, token: str) -> int:
    """The status the backend answers an authenticated call with this token."""
    return requests.get(f"{backend.api}/jobs", headers=backend.headers(token), timeout=30).status_code


def _browser_token(backend) -> str:
    """A fresh password-login token, by raw HTTP (independent of the code under test)."""
    resp = requests.post(f"{backend.api}/authn/basic/login", timeout=30,
                         json={"username": backend.user, "password": backend.password})
    resp.raise_for_status()
    return resp.json()["token"]


def _application_token(backend) -> str:
    resp = requests.post(f"{backend.api}/tokens/application", headers=backend.headers(_browser_token(backend)),
                         timeout=30)
    resp.raise_for_status()
    return resp.json()["token"]


def test_cli_logout_of_a_password_login_revokes_the_token_on_the_cluster(cli, local_backend):  # noqa: F811
    prof = auth.login_with_password(local_backend.url, local_backend.user, local_backend.password,
                                    profile_name="lab")
    token = prof.token
    assert _stored("lab")["token_source"] == "password" and _accepted(local_backend, token) == 200

    proc = cli("--json", "logout", "--profile", "lab")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cluster"] == "revoked" and out["forgotten"] is True and out["profile"] == "lab"
    assert "revoked" in out["message"] and "\n" not in out["message"]
    assert _accepted(local_backend, token) == 401  # the old token is refused by the cluster now
    stored = _stored("lab")
    assert "token" not in stored and "token_source" not in stored and stored["user"] == local_backend.user
    assert stat.S_IMODE(_profiles_file().stat().st_mode) == 0o600

    again = cli("logout", "--profile", "lab")  # nothing left to do is not an error
    assert again.returncode == 0 and "nothing to do" in again.stdout
    cli.assert_no_secret(token, local_backend.password)


def test_pasted_token_is_kept_on_the_cluster_unless_revoke(local_backend):
    app = _application_token(local_backend)
    auth.login_with_token(local_backend.url, app, profile_name="ci")
    assert _stored("ci")["token_source"] == "pasted"
    kept = auth.logout("ci")
    assert kept.cluster == "kept" and kept.forgotten and "stays valid" in kept.message and "--revoke" in kept.message
    assert _accepted(local_backend, app) == 200 and load_profile("ci").token == ""

    # --revoke on an application token: the rest-server (and the backend) forbid an application
    # token to revoke itself; the logout says so, points at the portal, and still forgets it here
    auth.login_with_token(local_backend.url, app, profile_name="ci")
    refused = auth.logout("ci", revoke=True)
    assert refused.cluster == "refused" and refused.forgotten and "Profile -> tokens" in refused.message
    assert _accepted(local_backend, app) == 200 and load_profile("ci").token == ""

    # a pasted browser token (e.g. from the portal) is revoked when asked
    pasted = _browser_token(local_backend)
    auth.login_with_token(local_backend.url, pasted, profile_name="portal")
    revoked = auth.logout("portal", revoke=True)
    assert revoked.cluster == "revoked" and _accepted(local_backend, pasted) == 401
    for result in (kept, refused, revoked):
        assert app not in repr(result) and pasted not in repr(result)


def test_profile_file_of_an_older_version_is_read_and_its_token_kept_on_the_cluster(local_backend):
    """A profile written before ``token_source`` existed: how the token was got is unknown,
    so it is treated like a pasted one (never revoked unasked)."""
    token = _browser_token(local_backend)
    _profiles_file().parent.mkdir(parents=True, exist_ok=True)
    _profiles_file().write_text(yaml.safe_dump({"active": "old", "profiles": {"old": {
        "url": local_backend.url, "user": local_backend.user, "token": token}}}))
    os.chmod(_profiles_file(), 0o600)
    result = auth.logout()
    assert result.profile == "old" and result.cluster == "kept" and result.forgotten
    assert _accepted(local_backend, token) == 200


def test_cluster_down_still_forgets_the_token_and_says_so(cli, fresh_local_backend):  # noqa: F811
    backend = fresh_local_backend
    token = auth.login_with_password(backend.url, backend.user, backend.password, profile_name="gone").token
    backend.stop()
    proc = cli("logout", "--profile", "gone")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert "\n" not in line and "could not be reached" in line and "may still be valid" in line
    assert "forgotten here" in line and "token" not in _stored("gone")
    cli.assert_no_secret(token)


def test_cluster_that_never_answers_bounds_the_logout(local_backend):
    """A FAKE cluster: a socket that accepts connections and never answers (a hung server; the
    embedded backend cannot be made to hang). The logout gives up after its timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        prof = auth.login_with_password(local_backend.url, local_backend.user, local_backend.password,
                                        profile_name="hung", save=False)
        prof.url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        save_profile(prof)
        started = time.monotonic()
        result = auth.logout("hung", timeout=1.0)
        took = time.monotonic() - started
    assert result.cluster == "unreachable" and result.forgotten and "did not answer within 1 s" in result.message
    assert took < 8, took  # one try plus at most one retry, each within the 1 s deadline
    # the real token of that login is untouched on the real cluster (it was never sent there)
    assert _accepted(local_backend, prof.token) == 200


def test_environment_token_and_bad_input(cli, local_backend, monkeypatch):  # noqa: F811
    env = {"PAI_URL": local_backend.url, "PAI_USER": local_backend.user, "PAI_TOKEN": _browser_token(local_backend)}
    proc = cli("logout", extra_env=env)
    assert proc.returncode == 2 and "PAI_TOKEN" in proc.stderr and "unset" in proc.stderr
    monkeypatch.setenv("PAI_URL", env["PAI_URL"])
    monkeypatch.setenv("PAI_TOKEN", env["PAI_TOKEN"])
    with pytest.raises(InvalidInputError):
        auth.logout()
    revoked = auth.logout(revoke=True)  # asked for: revoked there; the environment is the user's to change
    assert revoked.cluster == "revoked" and not revoked.forgotten and "unset PAI_TOKEN" in revoked.message
    assert _accepted(local_backend, env["PAI_TOKEN"]) == 401

    for args in (("logout", "--profile", "nope"), ("logout", "extra"), ("logout", "--revoke=yes")):
        bad = cli(*args)  # the fixture checks: exactly one stderr line starting with pai-magic
        assert bad.returncode == 2 and bad.stdout == "", (args, bad.stderr)
    cli.assert_no_secret(env["PAI_TOKEN"])
