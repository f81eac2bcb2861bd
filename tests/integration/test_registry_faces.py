"""The registry's faces against a real registry: the CLI verbs and the notebook magics."""
from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from pai_magic.cli import main
from pai_magic.core.registry import RegistryClient
from tests.fixtures.registry import make_docker_save, make_layer


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "model.tar"
    make_docker_save(path, [make_layer({"w": b"weights" * 5000}), make_layer({"c": b"code"})])
    return path


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_push_list_details_tag_rm(registry, archive, capsys, monkeypatch):
    monkeypatch.setenv("PAI_REGISTRY", registry.url)  # no cluster profile needed to push images
    code, out, err = _cli(capsys, "push", str(archive), "team/train:v1")
    assert code == 0 and f"pushed {registry.host}/team/train:v1 sha256:" in out
    assert "writing the manifest" in err
    code, out, _ = _cli(capsys, "image-tag", "team/train:v1", "team/train:stable")
    assert code == 0 and "tagged team/train:stable -> sha256:" in out
    code, out, _ = _cli(capsys, "images", "--tags", "--json")
    assert code == 0 and json.loads(out) == [{"repository": "team/train", "tags": ["stable", "v1"]}]
    code, out, _ = _cli(capsys, "images")
    assert out.split() == ["team/train"]
    code, out, _ = _cli(capsys, "images", "train", "--details")
    assert "linux/amd64" in out and "team/train" in out and "2024-05-01" in out
    code, out, _ = _cli(capsys, "images", "--details", "--json")
    rows = json.loads(out)
    assert {r["tag"] for r in rows} == {"v1", "stable"} and rows[0]["platform"] == "linux/amd64"
    code, out, err = _cli(capsys, "image-rm", "team/train:v1")
    assert code == 2 and "stable" in err and "--force" in err and err.count("\n") == 1
    code, out, err = _cli(capsys, "image-rm", "team/train:v1", "--force")
    assert code == 0 and "deleted team/train:v1" in out
    assert err.startswith("warning:") and "stable" in err
    code, out, _ = _cli(capsys, "images", "--tags")
    assert "(no tags)" in out


def test_cli_errors_are_exit_2_and_one_line(registry, registry_basic, archive, capsys, monkeypatch):
    code, out, err = _cli(capsys, "images")
    assert code == 2 and err.count("\n") == 1 and "PAI_REGISTRY" in err
    code, out, err = _cli(capsys, "images", "--registry", registry_basic.url)
    assert code == 2 and err.count("\n") == 1 and "registry_user" in err
    monkeypatch.setenv("PAI_REGISTRY_USER", registry_basic.username)
    monkeypatch.setenv("PAI_REGISTRY_PASSWORD", registry_basic.password)
    code, out, err = _cli(capsys, "push", str(archive), "a/b:c", "--registry", registry_basic.url)
    assert code == 0, err
    assert registry_basic.password not in out + err
    code, out, err = _cli(capsys, "image-rm", "a/b:nope", "--registry", registry_basic.url)
    assert code == 2 and err.count("\n") == 1 and "tags of a/b: c" in err
    code, out, err = _cli(capsys, "images", "--registry", "127.0.0.1:5000")
    assert code == 2 and "http://127.0.0.1:5000" in err


def test_cli_doctor(registry, registry_basic, tmp_path, capsys):
    # the registry lines of the whole-setup doctor (tests/integration/test_doctor.py has the rest)
    code, out, _ = _cli(capsys, "doctor", "--registry", registry.url, "--daemon-json", str(tmp_path / "d.json"))
    assert f"ok   registry: {registry.url} answers" in out and "ok   docker insecure-registries:" in out
    assert "loopback" in out
    code, out, _ = _cli(capsys, "doctor", "--registry", registry_basic.url, "--json")
    checks = {c["name"]: c for c in json.loads(out)}
    assert code == 1 and checks["registry"]["ok"] is False and "registry_user" in checks["registry"]["message"]


def test_cli_delete_disabled(registry_nodelete, archive, capsys):
    _cli(capsys, "push", str(archive), "k/k:1", "--registry", registry_nodelete.url)
    code, _, err = _cli(capsys, "image-rm", "k/k:1", "--registry", registry_nodelete.url)
    assert code == 2 and "storage.delete.enabled: true" in err and err.count("\n") == 1


def test_magics_full_cycle(registry, archive, ipy, monkeypatch, capsys):
    monkeypatch.setenv("PAI_REGISTRY", registry.url)
    view = ipy.run_line_magic("pai_image_push", f"{archive} team/nb:v1")
    assert f"Pushed {registry.host}/team/nb:v1" in view.text and "--image" in view.text
    printed = capsys.readouterr().out
    assert "writing the manifest" in printed and "pushed team/nb:v1" in printed  # text progress (no kernel)
    assert "Tagged team/nb:latest" in ipy.run_line_magic("pai_image_tag", "team/nb:v1 team/nb:latest").text
    table = ipy.run_line_magic("pai_images", "--tags")
    assert table.rows == [["team/nb", "latest, v1"]]
    assert "<table" in table._repr_html_() and "team/nb" in table.text()
    details = ipy.run_line_magic("pai_images", "nb --details")
    assert len(details.rows) == 2 and details.rows[0][2] == "linux/amd64"
    assert "sha256:" in details._repr_html_()
    with pytest.raises(UsageError, match="--force"):
        ipy.run_line_magic("pai_image_rm", "team/nb:v1")
    rm = ipy.run_line_magic("pai_image_rm", "team/nb:v1 --force")
    assert "Warning" in rm.text and "latest" in rm.text and "Warning" in rm._repr_html_()
    assert ipy.run_line_magic("pai_images", "").rows == [["team/nb"]]


def test_magic_errors_are_one_line_usage_errors(registry_basic, ipy, monkeypatch):
    monkeypatch.setenv("PAI_REGISTRY", registry_basic.url)
    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_images", "")
    assert "registry_user" in str(err.value) and "\n" not in str(err.value)
    assert "%pai_login" not in str(err.value)  # it is the registry's login, not the cluster's
    monkeypatch.setenv("PAI_REGISTRY_USER", registry_basic.username)
    monkeypatch.setenv("PAI_REGISTRY_PASSWORD", registry_basic.password)
    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_image_push", "/nonexistent.tar a/b:c")
    assert "docker save" in str(err.value)
    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_image_rm", "")
    assert "pai_image_rm" in str(err.value)
    with pytest.raises(UsageError):
        ipy.run_line_magic("pai_images", "--workers 0")


def test_push_progress_widget_updates(registry, archive):
    # the ipywidgets bar, driven by the same events; shown when a kernel is attached
    from pai_magic.magics.registry import _PushProgress

    import ipywidgets

    progress = _PushProgress("team/w:v1")
    progress.bar = ipywidgets.FloatProgress(min=0, max=1)
    progress.label = ipywidgets.Label()
    seen = []
    from pai_magic.core.registry import push_archive

    with RegistryClient(registry.url) as client:
        push_archive(client, archive, "team/w:v1", chunk_size=16 * 1024,
                     progress=lambda e: (progress(e), seen.append(progress.bar.value)))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(set(seen)) > 3
    assert progress.bar.bar_style == "success" and progress.label.value == "pushed team/w:v1"
