"""A registry image in a job: the registry host in the uri, auth through secrets."""
from __future__ import annotations

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.registry import RegistryClient, job_image, push_archive
from pai_magic.core.registry.job_image import job_image_from_profile
from tests.fixtures.registry import make_docker_save, make_layer


def _push(client, tmp_path, target):
    archive = tmp_path / "img.tar"
    make_docker_save(archive, [make_layer({"a": b"job" * 100})])
    push_archive(client, archive, target)


def test_public_and_foreign_images_are_left_alone():
    assert job_image("ubuntu:22.04").uri == "ubuntu:22.04"
    other = job_image("reg.other:5000/x/y:1", "10.0.0.5:5000", "u", "p")
    assert other.uri == "reg.other:5000/x/y:1" and other.registry_auth is None and not other.private
    mine = job_image("http://10.0.0.5:5000/x/y:1", "10.0.0.5:5000", "u", "p")
    assert mine.uri == "10.0.0.5:5000/x/y:1" and mine.registry_auth == ("u", "p", "10.0.0.5:5000")
    assert "'p'" not in repr(mine)
    with pytest.raises(InvalidInputError):
        job_image("")


def test_bare_name_pushed_to_the_profile_registry_gets_its_host(registry_basic, tmp_path):
    with RegistryClient(registry_basic.url, registry_basic.username, registry_basic.password) as client:
        _push(client, tmp_path, "team/train:v1")
        img = job_image("team/train:v1", client=client)
        assert img.private and img.uri == f"{registry_basic.host}/team/train:v1"
        assert img.registry_auth == (registry_basic.username, registry_basic.password, registry_basic.host)
        # not on the registry: a Docker Hub name, untouched, no credentials sent along
        hub = job_image("pytorch/pytorch:latest", client=client)
        assert hub.uri == "pytorch/pytorch:latest" and hub.registry_auth is None


def test_prerequisite_through_jobspec_puts_the_password_in_secrets(registry_basic, tmp_path):
    protocol = pytest.importorskip("pai_magic.core.protocol")
    with RegistryClient(registry_basic.url, registry_basic.username, registry_basic.password) as client:
        _push(client, tmp_path, "team/train:v1")
        img = job_image("team/train:v1", client=client)
    spec = protocol.JobSpec(name="train", image=img.uri, commands=["python train.py"],
                            registry_auth=img.registry_auth)
    job = protocol.build_protocol(spec)
    [prereq] = job["prerequisites"]
    assert prereq["uri"] == f"{registry_basic.host}/team/train:v1"
    assert prereq["auth"]["registryuri"] == registry_basic.host
    assert prereq["auth"]["username"] == registry_basic.username
    assert prereq["auth"]["password"].startswith("<% $secrets.")
    assert registry_basic.password in job["secrets"].values()
    assert protocol.protocol_errors(job) == []
    assert registry_basic.password not in protocol.dump_protocol(protocol.mask_secrets(job))


def test_from_profile(registry, tmp_path):
    from types import SimpleNamespace

    with RegistryClient(registry.url) as client:
        _push(client, tmp_path, "team/p:v2")
    profile = SimpleNamespace(registry_url=registry.url, registry_user=None, registry_password=None)
    img = job_image_from_profile("team/p:v2", profile)
    assert img.uri == f"{registry.host}/team/p:v2" and img.registry_auth is None
    assert job_image_from_profile("team/p:v2", SimpleNamespace()).uri == "team/p:v2"


def test_cli_submit_and_magic_resolve_a_pushed_bare_name(registry_basic, tmp_path, capsys, monkeypatch):
    """Both job faces go through job_image_from_profile: host prefixed, password only in secrets."""
    import json as _json

    from IPython.core.interactiveshell import InteractiveShell

    from pai_magic.cli import main

    with RegistryClient(registry_basic.url, registry_basic.username, registry_basic.password) as client:
        _push(client, tmp_path, "team/train:v1")
    monkeypatch.setenv("PAI_URL", "http://127.0.0.1:9")  # a dry run never calls the cluster
    monkeypatch.setenv("PAI_USER", "alice")
    monkeypatch.setenv("PAI_TOKEN", "t0ken")
    monkeypatch.setenv("PAI_REGISTRY", registry_basic.url)
    monkeypatch.setenv("PAI_REGISTRY_USER", registry_basic.username)
    monkeypatch.setenv("PAI_REGISTRY_PASSWORD", registry_basic.password)
    code = main(["submit", "--dry-run", "--json", "--image", "team/train:v1", "--", "python", "train.py"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert registry_basic.password not in out
    job = _json.loads(out)
    job = job.get("protocol", job)
    [prereq] = job["prerequisites"]
    assert prereq["uri"] == f"{registry_basic.host}/team/train:v1"
    assert prereq["auth"]["password"].startswith("<% $secrets.")

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "pai_magic")
        view = shell.run_cell_magic("pai_job", "--dry-run -o dry --image team/train:v1", "python train.py\n")
        assert registry_basic.password not in view.text + view._repr_html_()
        [prereq] = shell.user_ns["dry"]["prerequisites"]
        assert prereq["uri"] == f"{registry_basic.host}/team/train:v1"
        assert prereq["auth"]["password"].startswith("<% $secrets.")
    finally:
        InteractiveShell.clear_instance()


def test_from_profile_falls_back_to_pai_registry_like_the_push_does(registry, tmp_path, monkeypatch):
    """%pai_local's profile has no registry; %pai_image_push used PAI_REGISTRY: a job must too."""
    from types import SimpleNamespace

    with RegistryClient(registry.url) as client:
        _push(client, tmp_path, "team/env:v1")
    monkeypatch.setenv("PAI_REGISTRY", registry.url)
    no_registry = SimpleNamespace(registry_url=None, registry_user=None, registry_password=None)
    assert job_image_from_profile("team/env:v1", no_registry).uri == f"{registry.host}/team/env:v1"
    assert job_image_from_profile("team/env:v1", None).uri == f"{registry.host}/team/env:v1"
