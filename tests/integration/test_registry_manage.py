"""Details (single- and multi-arch), tag, delete and one-line errors on a real registry."""
from __future__ import annotations

import json

import pytest

from pai_magic.core.errors import ConflictError, InvalidInputError, NotFoundError, PaiError
from pai_magic.core.registry import RegistryClient, image_details, push_archive, tag_details
from pai_magic.core.registry.models import DOCKER_MANIFEST_LIST, OCI_INDEX
from tests.fixtures.registry import make_config, make_docker_save, make_layer


def _push(client, tmp_path, target, *, arch="amd64", variant=None, payload=b"x", layout="docker"):
    layers = [make_layer({"f": payload * 1000}), make_layer({"g": arch.encode() * 100})]
    archive = tmp_path / f"{arch}-{layout}.tar"
    config = make_config(layers, arch=arch, variant=variant, created=f"2024-06-0{len(arch) % 9 + 1}T00:00:00Z")
    make_docker_save(archive, layers, layout=layout, config=config)
    return push_archive(client, archive, target)


def _multi_arch(client, tmp_path, repo, media_type):
    amd = _push(client, tmp_path, f"{repo}:amd64", arch="amd64")
    arm = _push(client, tmp_path, f"{repo}:arm64", arch="arm64", variant="v8", payload=b"y")
    att = _push(client, tmp_path, f"{repo}:att", arch="unknown", payload=b"z")
    child_type = ("application/vnd.oci.image.manifest.v1+json" if media_type == OCI_INDEX
                  else "application/vnd.docker.distribution.manifest.v2+json")
    # the children were pushed in the docker layout; an index may still reference them
    children = []
    for res, platform in [(amd, {"os": "linux", "architecture": "amd64"}),
                          (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
                          (att, {"os": "unknown", "architecture": "unknown"})]:
        m = client.manifest(repo, res.digest)
        children.append({"mediaType": m.media_type if media_type != OCI_INDEX else child_type,
                         "digest": res.digest, "size": len(m.raw), "platform": platform})
    children[-1]["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    if media_type == OCI_INDEX:
        for child in children:
            child["mediaType"] = client.manifest(repo, child["digest"]).media_type
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    raw = json.dumps(index).encode()
    digest = client.put_manifest(repo, "multi", raw, media_type)
    return digest, amd, arm


def test_details_single_arch(registry, tmp_path):
    with RegistryClient(registry.url) as client:
        pushed = _push(client, tmp_path, "team/single:v1")
        [row] = tag_details(client, "team/single", "v1")
        manifest = client.manifest("team/single", "v1")
    assert row.digest == pushed.digest
    assert row.size == sum(layer["size"] for layer in manifest.data["layers"])  # compressed sizes
    assert (row.os, row.architecture, row.platform) == ("linux", "amd64", "linux/amd64")
    assert row.created.startswith("2024-06-")
    assert row.platform_digest is None and row.error is None


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
def test_details_multi_arch_one_row_per_platform(registry, tmp_path, media_type):
    with RegistryClient(registry.url) as client:
        digest, amd, arm = _multi_arch(client, tmp_path, "team/multi", media_type)
        rows = tag_details(client, "team/multi", "multi")
    assert [r.platform for r in rows] == ["linux/amd64", "linux/arm64/v8"]  # attestation left out
    assert all(r.digest == digest and r.media_type == media_type for r in rows)
    assert [r.platform_digest for r in rows] == [amd.digest, arm.digest]
    assert rows[0].size != rows[1].size or rows[0].platform_digest != rows[1].platform_digest


def test_details_of_everything_uses_the_digest_cache(registry, tmp_path):
    with RegistryClient(registry.url, workers=4) as client:
        _push(client, tmp_path, "team/a:v1")
        client.tag("team/a:v1", "team/a:v2")
        client.tag("team/a:v1", "team/b:v1")
        rows = image_details(client)
        assert [(r.repository, r.tag) for r in rows] == [("team/a", "v1"), ("team/a", "v2"), ("team/b", "v1")]
        assert len({r.digest for r in rows}) == 1
        before = client.transport.request_count
        again = image_details(client)
        spent = client.transport.request_count - before
    assert again == rows
    # catalog + 2 tag lists + 3 manifest GETs by tag; the config blob came from the cache
    assert spent == 1 + 2 + 3


def test_tag_is_a_manifest_copy_within_and_across_repositories(registry, tmp_path):
    with RegistryClient(registry.url) as client:
        pushed = _push(client, tmp_path, "team/src:v1")
        assert client.tag("team/src:v1", "team/src:stable") == pushed.digest
        assert client.tag(f"{registry.host}/team/src:v1", "other/dst:v9") == pushed.digest
        assert client.manifest("other/dst", "v9").raw == client.manifest("team/src", "v1").raw
        for layer in client.manifest("other/dst", "v9").data["layers"]:
            assert client.blob_size("other/dst", layer["digest"]) == layer["size"]
        digest, _, _ = _multi_arch(client, tmp_path, "team/mm", OCI_INDEX)
        assert client.tag("team/mm:multi", "copy/mm:latest") == digest
        assert [r.platform for r in tag_details(client, "copy/mm", "latest")] == ["linux/amd64", "linux/arm64/v8"]
        with pytest.raises(NotFoundError):
            client.tag("team/src:nope", "team/src:x")
        with pytest.raises(InvalidInputError):
            client.tag("team/src:v1", "team/src@sha256:" + "0" * 64)


def test_delete_by_digest_refuses_then_forces_shared_tags(registry, tmp_path):
    with RegistryClient(registry.url) as client:
        _push(client, tmp_path, "team/del:v1")
        client.tag("team/del:v1", "team/del:latest")
        _push(client, tmp_path, "team/del:other", arch="arm64", payload=b"q")
        with pytest.raises(ConflictError) as refused:
            client.delete("team/del:v1")  # would take "latest" along: refused, nothing lost
        assert "latest" in str(refused.value) and "--force" in str(refused.value)
        assert client.tags("team/del") == ["latest", "other", "v1"]
        result = client.delete("team/del:v1", force=True)
        assert result.other_tags == ["latest"]
        assert "latest" in result.warning
        assert client.tags("team/del") == ["other"]
        alone = client.delete("team/del:other")
        assert alone.other_tags == [] and alone.warning is None
        assert client.tags("team/del") == []  # empty repository, not an error
        with pytest.raises(NotFoundError) as err:
            client.delete("team/del:v1")
        assert "\n" not in str(err.value)


def test_delete_disabled_is_one_clear_sentence(registry_nodelete, tmp_path):
    with RegistryClient(registry_nodelete.url) as client:
        _push(client, tmp_path, "team/keep:v1")
        with pytest.raises(PaiError) as err:
            client.delete("team/keep:v1")
    assert "storage.delete.enabled: true" in str(err.value)
    assert "\n" not in str(err.value) and err.value.status == 405


def test_name_unknown_and_manifest_unknown_are_one_line(registry, tmp_path):
    with RegistryClient(registry.url) as client:
        with pytest.raises(NotFoundError) as err:
            client.tags("no/such", missing_ok=False)
        assert err.value.code == "NAME_UNKNOWN" and "\n" not in str(err.value)
        assert "no/such" in str(err.value)
        with pytest.raises(NotFoundError) as err:
            client.delete("no/such:v1")  # a repository the person named that does not exist
        assert err.value.code == "NAME_UNKNOWN" and "\n" not in str(err.value)
        _push(client, tmp_path, "team/x:v1")
        with pytest.raises(NotFoundError) as err:
            client.manifest("team/x", "v2")
        assert err.value.code == "MANIFEST_UNKNOWN" and "team/x:v2" in str(err.value)
        with pytest.raises(NotFoundError) as err:
            client.delete("team/x:v2")
        assert "tags of team/x: v1" in str(err.value)
