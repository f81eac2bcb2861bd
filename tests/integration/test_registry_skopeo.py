"""Cross-check with another client: skopeo reads what we push, and we read what skopeo pushes."""
from __future__ import annotations

import json
import subprocess

import pytest

from pai_magic.core.registry import RegistryClient, image_details, push_archive
from tests.fixtures.registry import make_docker_save, make_layer
from tests.fixtures.services import need_binary


def _skopeo(*args: str) -> str:
    binary = need_binary("skopeo", "skopeo")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_skopeo_inspects_what_we_pushed(registry, tmp_path, layout):
    archive = tmp_path / "img.tar"
    layers = [make_layer({"a": b"1" * 10000}), make_layer({"b": b"2" * 20000})]
    make_docker_save(archive, layers, layout=layout)
    with RegistryClient(registry.url) as client:
        pushed = push_archive(client, archive, "team/ours:v1")
        manifest = client.manifest("team/ours", "v1")
    info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/team/ours:v1"))
    assert info["Digest"] == pushed.digest
    assert info["Layers"] == [layer["digest"] for layer in manifest.data["layers"]]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/team/ours:v1")
    assert raw.encode() == manifest.raw
    # skopeo can also pull it back into a docker archive and the config is unchanged
    _skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/team/ours:v1",
            f"docker-archive:{tmp_path / 'back.tar'}:team/ours:v1")
    tags = json.loads(_skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/team/ours"))
    assert tags["Tags"] == ["v1"]


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_we_list_and_detail_what_skopeo_pushed(registry, tmp_path, transport):
    archive = tmp_path / "img.tar"
    make_docker_save(archive, [make_layer({"s": b"skopeo" * 3000})],
                     layout="docker" if transport == "docker-archive" else "oci")
    _skopeo("copy", "--dest-tls-verify=false", f"{transport}:{archive}", f"docker://{registry.host}/theirs/img:v7")
    info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/theirs/img:v7"))
    with RegistryClient(registry.url) as client:
        listing = client.list_images()
        [row] = image_details(client)
    assert [(i.repository, i.tags) for i in listing] == [("theirs/img", ["v7"])]
    assert row.digest == info["Digest"]
    assert (row.os, row.architecture) == ("linux", "amd64")
    assert row.created.startswith("2024-05-01")
    assert row.size > 0
