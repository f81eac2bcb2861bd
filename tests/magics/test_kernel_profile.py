"""``%pai_kernel install`` names the profile THIS notebook uses, not the profile file's active one.

A real InteractiveShell logs in to the embedded backend over real HTTP as profile ``lab``; then
another process (the CLI, ``pai-magic profiles use``) makes ``other`` (a cluster that does not
answer) the file's active profile. Every other magic keeps talking to ``lab`` (the session's
choice), so the kernel installed from this notebook must start on ``lab`` too; ``--profile``
still wins, and a kernelspec must still name a SAVED profile (never the env-only one).
"""
from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from pai_magic.cli import main as cli_main
from pai_magic.core.profiles import Profile, active_profile_name, save_profile

DEAD = "http://127.0.0.1:9"


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    return tmp_path / "jupyter" / "kernels"


@pytest.fixture
def lab_chosen_other_active(shell, local_backend, kernels, monkeypatch, secrets_to_hide, capsys):
    """The notebook logged in as ``lab``; afterwards the CLI made ``other`` the active profile."""
    secrets_to_hide.extend([local_backend.password, local_backend.token, "t-other-000000"])
    save_profile(Profile(name="other", url=DEAD, user="nobody", token="t-other-000000"))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": local_backend.password)
    shell.line("pai_login", f"{local_backend.url} --user {local_backend.user} --profile lab")
    assert cli_main(["profiles", "use", "other"]) == 0
    capsys.readouterr()
    assert active_profile_name() == "other"
    return shell


def _spec(kernels, name: str) -> dict:
    return json.loads((kernels / name / "kernel.json").read_text())


def test_install_uses_the_sessions_profile_not_the_files_active_one(lab_chosen_other_active, kernels):
    shell = lab_chosen_other_active
    # --vc makes install ask the cluster: only lab (the live backend) can confirm it without a warning
    view = shell.line("pai_kernel", "install k-lab --image python:3.11 --gpu 0 --vc default")
    spec = _spec(kernels, "k-lab")
    config = spec["metadata"]["kernel_provisioner"]["config"]
    assert config["profile"] == "lab", config
    assert "(lab, no GPU)" in spec["display_name"] and "(lab, no GPU)" in view.text, view.text
    assert "Warning" not in view.text, view.text  # the VC was checked on lab, which answered
    rows = shell.line("pai_kernel", "list")
    assert [r[2] for r in rows.rows] == ["lab"], rows.rows
    assert active_profile_name() == "other", "installing must not move the file's active profile"


def test_explicit_profile_wins_over_the_session(lab_chosen_other_active, kernels):
    view = lab_chosen_other_active.line("pai_kernel", "install k-other --image python:3.11 --profile other")
    assert _spec(kernels, "k-other")["metadata"]["kernel_provisioner"]["config"]["profile"] == "other"
    assert "(other, 1 GPU)" in view.text, view.text


def test_configured_profile_is_used_when_nothing_was_chosen(shell, local_backend, kernels, secrets_to_hide):
    """``%config PaiMagics.profile`` is the session's choice too (as for %%pai_job, %pai_jobs ...)."""
    secrets_to_hide.append(local_backend.token)
    save_profile(Profile(name="lab", url=local_backend.url, user=local_backend.user, token=local_backend.token))
    save_profile(Profile(name="other", url=DEAD, user="nobody", token="t-other-000001"))
    assert active_profile_name() == "other"
    shell.run("%config PaiMagics.profile = 'lab'")
    shell.line("pai_kernel", "install k-cfg --image python:3.11")
    assert _spec(kernels, "k-cfg")["metadata"]["kernel_provisioner"]["config"]["profile"] == "lab"
    # with no choice at all the file's active profile is still the default
    shell.run("%config PaiMagics.profile = None")
    shell.line("pai_kernel", "install k-active --image python:3.11")
    assert _spec(kernels, "k-active")["metadata"]["kernel_provisioner"]["config"]["profile"] == "other"


def test_env_only_profile_is_still_refused_in_one_line(shell, local_backend, kernels, monkeypatch, secrets_to_hide):
    secrets_to_hide.append(local_backend.token)
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    assert shell.line("pai_jobs", "--limit 1") is not None  # the notebook works over the env-only profile
    with pytest.raises(UsageError) as info:
        shell.line("pai_kernel", "install k-env --image python:3.11")
    message = str(info.value)
    assert "\n" not in message and "saved profile" in message and "%pai_login" in message, message
    assert not (kernels / "k-env").exists()


def test_unknown_or_malformed_profile_is_one_line(lab_chosen_other_active, kernels):
    for line, words in (("--profile nope", "'nope'"), ("--profile 'a b'", "is not valid")):
        with pytest.raises(UsageError) as info:
            lab_chosen_other_active.line("pai_kernel", f"install k-bad --image python:3.11 {line}")
        message = str(info.value)
        assert "\n" not in message and words in message, message
    assert not (kernels / "k-bad").exists()


def test_the_panel_shown_in_the_notebook_uses_the_notebooks_profile(lab_chosen_other_active, local_backend):
    """The ipywidgets panel is a face of the same notebook: without ``profile=`` it shows the
    cluster the notebook's magics use (``lab``), not the file's active one (a dead ``other``)."""
    pytest.importorskip("ipywidgets")
    from pai_magic.widgets import PaiPanel, close_all, panel

    try:
        for p in (panel(refresh_interval=None), PaiPanel(refresh_interval=None)):
            assert p.profile_name == "lab", p
            assert p.error_text == "", p.error_text  # it reached lab; `other` does not answer
            assert local_backend.url.split("//")[1] in p.cluster_label.value, p.cluster_label.value
        assert panel(profile="other", refresh_interval=None).profile_name == "other"  # an explicit one wins
    finally:
        close_all()
