"""Basic (htpasswd) and Bearer (RS256/x5c token server) auth against real registries."""
from __future__ import annotations

import base64
import json

import pytest

from pai_magic.core.errors import AuthError
from pai_magic.core.registry import RegistryClient, image_details, push_archive
from tests.fixtures.registry import make_docker_save, make_layer


def _archive(tmp_path):
    path = tmp_path / "img.tar"
    make_docker_save(path, [make_layer({"a": b"auth test" * 1000})])
    return path


def test_basic_auth_full_cycle(registry_basic, tmp_path):
    with RegistryClient(registry_basic.url, registry_basic.username, registry_basic.password) as client:
        client.ping()
        pushed = push_archive(client, _archive(tmp_path), "team/private:v1")
        client.tag("team/private:v1", "team/private:v2")
        assert client.list_images() == [type(client.list_images()[0])("team/private", ["v1", "v2"])]
        assert image_details(client)[0].digest == pushed.digest
        assert client.delete("team/private:v2", force=True).other_tags == ["v1"]


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_basic_auth_refused_is_one_line_without_secrets(registry_basic, password):
    user = "alice" if password else None
    with RegistryClient(registry_basic.url, user, password, docker_config=False) as client:
        for call in (client.ping, lambda: list(client.catalog()), lambda: client.tags("a/b")):
            with pytest.raises(AuthError) as err:
                call()
            text = str(err.value)
            assert "\n" not in text and "registry_user" in text
            assert "wrong-password" not in text and "s3cret" not in text


def test_credentials_from_docker_config(registry_basic, tmp_path, monkeypatch):
    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"http://{registry_basic.host}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient(registry_basic.url) as client:
        client.ping()
        assert list(client.catalog()) == []
        assert registry_basic.password not in repr(client) + repr(client.transport)


def test_bearer_token_auth_with_a_token_per_scope(registry_token, tmp_path):
    ts = registry_token.token_server
    with RegistryClient(registry_token.url, registry_token.username, registry_token.password) as client:
        push_archive(client, _archive(tmp_path), "team/tok:v1")
        client.tag("team/tok:v1", "other/tok:v1")  # cross-repo: the mount needs two repositories' scopes
        assert client.manifest("other/tok", "v1").digest == client.manifest("team/tok", "v1").digest
    ts.requests.clear()
    with RegistryClient(registry_token.url, registry_token.username, registry_token.password) as client:
        listing = client.list_images()
        assert [(i.repository, i.tags) for i in listing] == [("other/tok", ["v1"]), ("team/tok", ["v1"])]
        scopes = sorted(s for q in ts.requests for s in q.get("scope", []))
        # exactly one token per scope: the catalog and each repository's pull
        assert scopes == ["registry:catalog:*", "repository:other/tok:pull", "repository:team/tok:pull"]
        assert all(q.get("service") == [ts.service] for q in ts.requests)
        client.list_images()  # every scope is cached now: no new token
        assert len(ts.requests) == 3 == client.transport.auth.token_requests


def test_bearer_expired_tokens_are_fetched_again(registry_token, tmp_path):
    ts = registry_token.token_server
    ts.expires_in = None  # no expires_in: the client must assume 60 s, not forever
    with RegistryClient(registry_token.url, registry_token.username, registry_token.password) as client:
        assert list(client.catalog()) == []
        tok = client.transport.auth._tokens
        assert len(tok) == 1
        entry = next(iter(tok.values()))
        import time
        assert 50 < entry.expires_at - time.monotonic() <= 60
        entry.expires_at = 0  # pretend a minute went by
        before = len(ts.requests)
        assert list(client.catalog()) == []
        assert len(ts.requests) == before + 1


@pytest.mark.parametrize("user,password", [(None, None), ("alice", "bad")])
def test_bearer_refused_is_one_line(registry_token, user, password):
    with RegistryClient(registry_token.url, user, password, docker_config=False) as client:
        with pytest.raises(AuthError) as err:
            list(client.catalog())
    assert "\n" not in str(err.value)
    assert "bad" not in str(err.value).replace("bad request", "")
