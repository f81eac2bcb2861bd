"""%pai_login / %pai_profile / %pai_local against the real embedded backend."""
from __future__ import annotations

import os
import stat

import pytest
import yaml
from IPython.core.error import UsageError

from pai_magic.core.paths import config_dir


def _profiles() -> dict:
    return yaml.safe_load((config_dir() / "profiles.yaml").read_text())


def test_login_asks_getpass_keeps_only_the_token(shell, local_backend, secrets_to_hide, monkeypatch):
    secrets_to_hide.append(local_backend.password)
    prompts = []

    def fake_getpass(prompt=""):
        prompts.append(prompt)
        return local_backend.password

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    view = shell.line("pai_login", f"{local_backend.url} --user {local_backend.user} --profile lab")
    assert prompts and local_backend.user in prompts[0] and local_backend.url in prompts[0]
    assert f"Logged in as {local_backend.user} at {local_backend.url}" in view.text
    assert "profile" in view.text and "lab" in view.text
    data = _profiles()
    assert data["active"] == "lab"
    prof = data["profiles"]["lab"]
    assert prof["token"] and prof["user"] == local_backend.user
    raw = (config_dir() / "profiles.yaml").read_text()
    assert local_backend.password not in raw
    assert stat.S_IMODE(os.stat(config_dir() / "profiles.yaml").st_mode) == 0o600
    # the session now works: an authenticated call succeeds
    assert "No jobs match" in repr(shell.line("pai_jobs", "--state STOPPING"))


def test_wrong_password_is_one_line(shell, local_backend, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "not-the-password")
    with pytest.raises(UsageError) as info:
        shell.line("pai_login", f"{local_backend.url} --user {local_backend.user}")
    message = str(info.value)
    assert "\n" not in message and "refused" in message.lower()
    assert not (config_dir() / "profiles.yaml").exists()


def test_empty_or_cancelled_password(shell, local_backend, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")
    with pytest.raises(UsageError, match="No password"):
        shell.line("pai_login", f"{local_backend.url} --user {local_backend.user}")

    def cancel(prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr("getpass.getpass", cancel)
    with pytest.raises(UsageError, match="cancelled"):
        shell.line("pai_login", f"{local_backend.url} --user {local_backend.user}")


def test_login_with_a_pasted_token(shell, local_backend, secrets_to_hide, monkeypatch):
    secrets_to_hide.append(local_backend.token)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": local_backend.token)
    view = shell.line("pai_login", f"{local_backend.url} --token")
    assert f"Logged in as {local_backend.user}" in view.text
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "garbage.token.value")
    with pytest.raises(UsageError, match="%pai_login"):
        shell.line("pai_login", f"{local_backend.url} --token --profile other")


def test_login_needs_a_url_and_a_reachable_cluster(shell, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("must not ask before the URL works"))
    with pytest.raises(UsageError, match="Give the cluster URL"):
        shell.line("pai_login")
    with pytest.raises(UsageError, match="not a cluster URL"):
        shell.line("pai_login", "ftp://x")
    from tests.fixtures.services import free_port

    port = free_port()
    with pytest.raises(UsageError) as info:
        shell.line("pai_login", f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in str(info.value) and "\n" not in str(info.value)


def test_profiles_list_and_switch(pai, local_backend):
    table = pai.line("pai_profile")
    assert local_backend.url in repr(table) and "*" in repr(table)
    html = table._repr_html_()
    assert "<table" in html and local_backend.token not in html
    active = _profiles()["active"]
    view = pai.line("pai_profile", active)
    assert f"Using profile {active}" in view.text
    with pytest.raises(UsageError, match="No profile named 'nope'"):
        pai.line("pai_profile", "nope")


def test_expired_token_says_run_pai_login(pai):
    from pai_magic.core.profiles import active_profile_name, update_profile

    update_profile(active_profile_name(), token="expired.or.revoked")
    with pytest.raises(UsageError) as info:
        pai.line("pai_jobs")
    assert "%pai_login" in str(info.value) and "pai-magic" not in str(info.value)


def test_pai_local_starts_then_finds_the_backend(shell, tmp_path, secrets_to_hide):
    data = tmp_path / "local-data"
    view = shell.line("pai_local", f"--data-dir {data}")
    assert "started in this kernel" in view.text
    from pai_magic.local import read_credentials

    user, password = read_credentials(data)
    secrets_to_hide.append(password)
    assert f"Logged in as {user}" in view.text
    again = shell.line("pai_local", f"--data-dir {data}")
    assert "already running" in again.text
    assert "No jobs match" in repr(shell.line("pai_jobs"))
    # unloading the extension stops the backend this kernel started
    shell.shell.run_line_magic("unload_ext", "pai_magic")
    from pai_magic.local import find_running

    assert find_running(data) is None
    shell.shell.run_line_magic("load_ext", "pai_magic")
