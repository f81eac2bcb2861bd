"""Challenge parsing on real-shaped headers, docker config credentials, the per-scope token cache."""
from __future__ import annotations

import base64
import json

import pytest

from pai_magic.core.errors import AuthError, InvalidInputError
from pai_magic.core.registry.auth import (
    Credentials,
    RegistryAuth,
    docker_config_credentials,
    parse_challenges,
)


def test_bearer_challenge_with_commas_inside_quotes():
    # Docker Hub's exact shape: the scope holds a comma that a naive split would cut
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:samalba/my-app:pull,push"')
    [c] = parse_challenges(header)
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scope == "repository:samalba/my-app:pull,push"


def test_distribution_insufficient_scope_and_spaces():
    header = ('Bearer realm="http://127.0.0.1:1/token", service="pai-test", '
              'scope="repository:a/b:pull", error="insufficient_scope"')
    [c] = parse_challenges(header)
    assert c.params == {"realm": "http://127.0.0.1:1/token", "service": "pai-test",
                        "scope": "repository:a/b:pull", "error": "insufficient_scope"}


def test_several_challenges_escapes_and_token68():
    header = r'Negotiate YIIabc==, Basic realm="lab, \"east\"", charset="UTF-8", Bearer realm=x'
    got = parse_challenges(header)
    assert [c.scheme for c in got] == ["negotiate", "basic", "bearer"]
    assert got[0].params == {}
    assert got[1].params == {"realm": 'lab, "east"', "charset": "UTF-8"}
    assert got[2].realm == "x"


@pytest.mark.parametrize("header", [None, "", "   ", ",,,", '"', "Basic realm="])
def test_garbage_headers_do_not_crash(header):
    parse_challenges(header)


def test_credentials_repr_hides_password():
    creds = Credentials("bob", "hunter2")
    assert "hunter2" not in repr(creds)
    assert base64.b64decode(creds.basic_header()[6:]) == b"bob:hunter2"


def _write_config(tmp_path, auths):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    return path


@pytest.mark.parametrize("key", ["10.0.0.5:5000", "http://10.0.0.5:5000", "https://10.0.0.5:5000/v1/"])
def test_docker_config_auth_entries(tmp_path, key):
    path = _write_config(tmp_path, {key: {"auth": base64.b64encode(b"carol:pa:ss").decode()}})
    creds = docker_config_credentials("10.0.0.5:5000", path)
    assert creds == Credentials("carol", "pa:ss")
    assert docker_config_credentials("10.0.0.6:5000", path) is None


def test_docker_config_username_password_and_env(tmp_path, monkeypatch):
    _write_config(tmp_path, {"reg.lab:443": {"username": "u", "password": "p"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_config_credentials("reg.lab:443") == Credentials("u", "p")


def test_docker_config_missing_or_broken(tmp_path):
    assert docker_config_credentials("h:1", tmp_path / "nope.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError) as err:
        docker_config_credentials("h:1", bad)
    assert "\n" not in str(err.value)
    broken = _write_config(tmp_path, {"h:1": {"auth": "!!!notbase64"}})
    with pytest.raises(InvalidInputError):
        docker_config_credentials("h:1", broken)


class _Fetcher:
    def __init__(self, lifetime=300.0):
        self.calls = []
        self.lifetime = lifetime

    def __call__(self, challenge, scopes, creds):
        self.calls.append((challenge.realm, tuple(scopes), creds))
        return f"tok{len(self.calls)}", self.lifetime


BEARER = 'Bearer realm="http://t/token",service="svc",scope="repository:a:pull"'


def test_token_cache_is_per_scope_and_reused():
    fetch = _Fetcher()
    auth = RegistryAuth(Credentials("u", "pw-secret"), fetch)
    assert auth.header(["repository:a:pull"]) is None  # nothing known before a challenge
    h1 = auth.handle_challenge(BEARER, ["repository:a:pull"], None)
    assert h1 == "Bearer tok1"
    assert auth.header(["repository:a:pull"]) == "Bearer tok1"
    assert auth.header(["repository:b:pull"]) is None  # another scope needs its own token
    h2 = auth.handle_challenge(BEARER.replace(":a:", ":b:"), ["repository:b:pull"], None)
    assert h2 == "Bearer tok2" and len(fetch.calls) == 2
    assert fetch.calls[1][1] == ("repository:b:pull",)
    assert "pw-secret" not in repr(auth) and "tok1" not in repr(auth) and "tok2" not in repr(auth)


def test_refused_token_is_fetched_again_and_short_lifetime_expires():
    fetch = _Fetcher(lifetime=0.0)  # expires_in 0: never reused
    auth = RegistryAuth(None, fetch)
    h1 = auth.handle_challenge(BEARER, ["repository:a:pull"], None)
    assert auth.header(["repository:a:pull"]) == h1  # kept at least one second
    h2 = auth.handle_challenge(BEARER, ["repository:a:pull"], h1)  # the registry refused h1
    assert h2 != h1 and len(fetch.calls) == 2


def test_other_thread_refreshed_token_is_used_without_fetching():
    fetch = _Fetcher()
    auth = RegistryAuth(None, fetch)
    h1 = auth.handle_challenge(BEARER, ["repository:a:pull"], None)
    # a call that went out with no header before h1 existed gets h1, not a new token
    assert auth.handle_challenge(BEARER, ["repository:a:pull"], None) == h1
    assert len(fetch.calls) == 1


def test_basic_challenge_without_or_with_refused_credentials():
    auth = RegistryAuth(None, _Fetcher())
    with pytest.raises(AuthError) as err:
        auth.handle_challenge('Basic realm="r"', [], None)
    assert "registry_user" in str(err.value)
    creds = Credentials("u", "secretpw")
    auth = RegistryAuth(creds, _Fetcher())
    header = auth.handle_challenge('Basic realm="r"', [], None)
    assert header == creds.basic_header()
    assert auth.header(["anything"]) == header  # Basic goes up front from now on
    with pytest.raises(AuthError) as err:
        auth.handle_challenge('Basic realm="r"', [], header)
    assert "secretpw" not in str(err.value) and "'u'" in str(err.value)


def test_unknown_scheme_is_one_line_auth_error():
    with pytest.raises(AuthError) as err:
        RegistryAuth(None, _Fetcher()).handle_challenge('Negotiate abc', [], None)
    assert "\n" not in str(err.value)
