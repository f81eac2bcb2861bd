"""Profiles: environment, the one 0600 file with several clusters, and no secret in any output."""
from __future__ import annotations

import os
import stat

import pytest

from pai_magic.core import profiles as P
from pai_magic.core.errors import AuthError, InvalidInputError, NotFoundError

TOKEN = "tok.SECRET-TOKEN-VALUE.sig"
REG_PW = "REGISTRY-PASSWORD-VALUE"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_no_profile_says_how_to_log_in():
    with pytest.raises(AuthError) as info:
        P.load_profile()
    assert "pai-magic login URL" in str(info.value) and "%pai_login" in str(info.value)


def test_env_profile(monkeypatch):
    monkeypatch.setenv("PAI_URL", "http://10.0.0.1/rest-server/api/v2/")
    monkeypatch.setenv("PAI_USER", "alice")
    monkeypatch.setenv("PAI_TOKEN", TOKEN)
    monkeypatch.setenv("PAI_VC", "team")
    monkeypatch.setenv("PAI_REGISTRY", "http://10.0.0.5:5000")
    prof = P.load_profile()
    assert prof.url == "http://10.0.0.1"
    assert prof.rest_base == "http://10.0.0.1/rest-server/api/v2"
    assert (prof.user, prof.token, prof.virtual_cluster) == ("alice", TOKEN, "team")
    assert prof.registry_url == "http://10.0.0.5:5000"


def test_file_holds_several_clusters_one_active_and_is_0600():
    P.save_profile(P.Profile(name="lab", url="http://10.0.0.1", user="alice", token=TOKEN))
    P.save_profile(P.Profile(name="big", url="https://pai.example.org", user="bob", token="t2",
                             registry_url="https://reg.example.org", registry_user="bob",
                             registry_password=REG_PW), activate=False)
    path = P.profile_path()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert [p.name for p in P.list_profiles()] == ["big", "lab"]
    assert P.active_profile_name() == "lab"
    assert P.load_profile().name == "lab"
    assert P.load_profile("big").registry_password == REG_PW
    P.select_profile("big")
    assert P.load_profile().user == "bob"
    assert mode(path) == 0o600


def test_pai_profile_selects_and_beats_env(monkeypatch):
    P.save_profile(P.Profile(name="lab", url="http://10.0.0.1", user="alice", token=TOKEN))
    P.save_profile(P.Profile(name="other", url="http://10.0.0.2", user="carol", token="x"), activate=False)
    monkeypatch.setenv("PAI_URL", "http://10.9.9.9")
    assert P.load_profile().name == P.ENV_PROFILE_NAME
    monkeypatch.setenv("PAI_PROFILE", "other")
    assert P.load_profile().user == "carol"
    monkeypatch.setenv("PAI_PROFILE", "nope")
    with pytest.raises(NotFoundError) as info:
        P.load_profile()
    assert "lab" in str(info.value) and "other" in str(info.value)


def test_remove_moves_active_and_update_keeps_others():
    P.save_profile(P.Profile(name="a", url="http://h1", user="u", token="t"))
    P.save_profile(P.Profile(name="b", url="http://h2", user="u", token="t"))
    P.update_profile("b", token="new-token", virtual_cluster="vc2")
    assert P.load_profile("b").token == "new-token"
    assert P.load_profile("b").virtual_cluster == "vc2"
    P.remove_profile("b")
    assert P.active_profile_name() == "a"
    with pytest.raises(NotFoundError):
        P.remove_profile("b")
    with pytest.raises(InvalidInputError):
        P.update_profile("a", colour="red")


def test_secrets_never_in_repr_str_or_public_dict():
    prof = P.Profile(name="x", url="http://h", user="u", token=TOKEN, registry_url="http://r:5000",
                     registry_password=REG_PW)
    for text in (repr(prof), str(prof), str(prof.public_dict())):
        assert TOKEN not in text and REG_PW not in text
    assert prof.public_dict()["token"] == "******"


def test_group_readable_file_is_tightened_on_read():
    P.save_profile(P.Profile(name="a", url="http://h1", user="u", token=TOKEN))
    os.chmod(P.profile_path(), 0o644)
    P.load_profile()
    assert mode(P.profile_path()) == 0o600


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(InvalidInputError) as info:
        P.Profile(name="x", url="http://h", registry_url="10.0.0.5:5000")
    assert "http://10.0.0.5:5000" in str(info.value)  # it says how to write it
    with pytest.raises(InvalidInputError):
        P.Profile(name="x", url="ftp://h")
    with pytest.raises(InvalidInputError):
        P.save_profile(P.Profile(name="bad name!", url="http://h"))
    P.profile_path().parent.mkdir(parents=True, exist_ok=True)
    P.profile_path().write_text("profiles: [unclosed")
    with pytest.raises(InvalidInputError) as info:
        P.load_profile()
    assert "not valid YAML" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("raw,expected", [
    ("10.0.0.1", "http://10.0.0.1"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("https://pai.example.org/rest-server", "https://pai.example.org"),
    ("https://pai.example.org/rest-server/api/v2", "https://pai.example.org"),
    ("https://gw.example.org/pai/rest-server/api/v2/", "https://gw.example.org/pai"),
])
def test_normalize_url(raw, expected):
    assert P.normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["http://[::1", "::", "http://h:abc", "ftp://host", "http://", "not a url",
                                 "http://my host:8080"])
def test_malformed_urls_are_one_line_input_errors(raw):
    """Found by the magics' property test: these used to escape as bare ValueErrors."""
    with pytest.raises(InvalidInputError) as err:
        P.normalize_url(raw)
    assert "\n" not in str(err.value) and "http://HOST" in str(err.value)


@pytest.mark.parametrize("token", ["tök", "abc def", "a\tb"])
def test_pasted_token_that_cannot_be_a_header_is_refused(token):
    from pai_magic.core.client import PaiClient

    client = PaiClient(P.Profile(name="x", url="http://127.0.0.1:9"))
    with pytest.raises(InvalidInputError, match="not a token"):
        client.use_token(token)
    assert not client.profile.token


def test_no_profile_hint_offers_the_embedded_backend_in_each_face():
    from pai_magic.magics.errors import _cli_to_magic

    assert "pai-magic local --write-profile" in P.NO_PROFILE_HINT
    assert _cli_to_magic(P.NO_PROFILE_HINT) == "No cluster profile: run %pai_login URL (with no cluster: %pai_local)"


def test_client_for_profile_keeps_one_client_until_the_profile_changes():
    from pai_magic.core.client import ClientForProfile

    clients = ClientForProfile()
    prof = P.Profile(name="x", url="http://127.0.0.1:9", user="u", token="t1")
    first = clients.get(prof)
    closed = []
    real_close = first.close
    first.close = lambda: (closed.append(True), real_close())  # record, then really close
    assert clients.get(P.Profile(name="x", url="http://127.0.0.1:9", user="u", token="t1")) is first
    assert not closed
    second = clients.get(P.Profile(name="x", url="http://127.0.0.1:9", user="u", token="t2"))
    assert second is not first and second.profile.token == "t2"
    assert closed == [True]  # the old client's connections were released
    clients.close()


def test_forget_token_drops_only_the_token_it_was_given():
    """A logout forgets the token it revoked, never a newer one a login saved meanwhile."""
    P.save_profile(P.Profile(name="lab", url="http://10.0.0.1", user="alice", token=TOKEN,
                             token_source=P.TOKEN_FROM_PASSWORD))
    assert P.forget_token("lab", "another.token.value") is False
    assert P.load_profile("lab").token == TOKEN
    assert P.forget_token("lab", TOKEN) is True
    left = P.load_profile("lab")
    assert left.token == "" and left.token_source is None and left.user == "alice"
    assert mode(P.profile_path()) == 0o600
    assert P.forget_token("lab", TOKEN) is False and P.forget_token("nope", TOKEN) is False
