"""Push docker-save archives (both layouts) to a real registry and read them back blob by blob."""
from __future__ import annotations

import gzip
import json
import hashlib
import os

import pytest

from pai_magic.core.errors import InvalidInputError, NotFoundError, PaiError
from pai_magic.core.registry import RegistryClient, push_archive
from pai_magic.core.registry.models import DOCKER_MANIFEST, OCI_MANIFEST
from pai_magic.core.registry.push import LayerDigestCache
from tests.fixtures.registry import make_config, make_docker_save, make_layer


def _layers():
    return [make_layer({"bin/tool": os.urandom(300_000)}),           # incompressible, several chunks
            make_layer({"etc/conf": b"key=value\n" * 50_000}),        # compressible
            make_layer({"empty": b""})]


@pytest.mark.parametrize("layout,media_type", [("docker", DOCKER_MANIFEST), ("oci", OCI_MANIFEST)])
def test_push_then_read_back_blob_by_blob(registry, tmp_path, layout, media_type):
    layers = _layers()
    archive = tmp_path / "image.tar"
    config = make_docker_save(archive, layers, layout=layout)
    events = []
    with RegistryClient(registry.url) as client:
        result = push_archive(client, archive, "team/app:v1", progress=events.append, chunk_size=64 * 1024)
        assert result.uploaded_blobs == 4 and result.skipped_blobs == 0
        manifest = client.manifest("team/app", "v1")
        assert manifest.media_type == media_type
        assert manifest.digest == result.digest == "sha256:" + hashlib.sha256(manifest.raw).hexdigest()
        # the config blob went up byte for byte (its digest is the image ID)
        cdesc = manifest.data["config"]
        assert cdesc["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
        assert client.blob("team/app", cdesc["digest"]) == config
        # every layer: the registry's bytes hash to the manifest digest and gunzip to the original
        assert len(manifest.data["layers"]) == len(layers)
        for desc, original in zip(manifest.data["layers"], layers):
            assert desc["mediaType"].endswith(("tar.gzip", "tar+gzip"))
            data = b"".join(client.iter_blob("team/app", desc["digest"], 10_000))
            assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
            assert len(data) == desc["size"]
            assert gzip.decompress(data) == original
    phases = [e.phase for e in events]
    assert phases[-2:] == ["manifest", "done"]  # the manifest strictly last
    uploads = [e for e in events if e.phase == "upload" and e.blob_index == 0]
    assert len(uploads) > 1 and uploads[-1].done_bytes == uploads[-1].total_bytes  # chunked, progress to 100%


def test_repush_skips_existing_blobs(registry, tmp_path):
    archive = tmp_path / "image.tar"
    make_docker_save(archive, _layers())
    with RegistryClient(registry.url) as client:
        first = push_archive(client, archive, "team/app:v1")
        before = client.transport.request_count
        again = push_archive(client, archive, "team/app:v2")
        spent = client.transport.request_count - before
    assert again.digest == first.digest
    assert again.uploaded_blobs == 0 and again.skipped_blobs == 4 and again.uploaded_bytes == 0
    assert spent == 4 + 1  # one HEAD per blob (3 layers + config) and the manifest PUT


def test_repush_from_a_fresh_machine_still_skips(registry, tmp_path):
    # no local diff_id cache: the deterministic gzip gives the same digest, HEAD finds it
    archive = tmp_path / "image.tar"
    make_docker_save(archive, _layers(), layout="oci")
    with RegistryClient(registry.url) as client:
        push_archive(client, archive, "team/app:v1", cache=LayerDigestCache(tmp_path / "a.json"))
        again = push_archive(client, archive, "team/app:v1", cache=LayerDigestCache(tmp_path / "b.json"))
    assert again.uploaded_blobs == 0 and again.skipped_blobs == 4


def test_push_to_another_repository_mounts_known_layers(registry, tmp_path):
    archive = tmp_path / "image.tar"
    make_docker_save(archive, _layers())
    with RegistryClient(registry.url) as client:
        push_archive(client, archive, "team/one:v1")
        other = push_archive(client, archive, "team/two:v1")
        assert other.skipped_blobs == 3 and other.uploaded_bytes < 2000  # only the small config moved
        assert client.tags("team/two") == ["v1"]


def test_interrupted_push_leaves_no_tag(registry, tmp_path):
    archive = tmp_path / "image.tar"
    make_docker_save(archive, _layers())

    def stop_after_first_chunk(event):
        if event.phase == "upload" and event.blob_index == 1:
            raise KeyboardInterrupt  # what a notebook's stop button raises

    with RegistryClient(registry.url) as client:
        with pytest.raises(KeyboardInterrupt):
            push_archive(client, archive, "team/app:v1", progress=stop_after_first_chunk, chunk_size=32 * 1024)
        assert client.manifest_digest("team/app", "v1") is None
        with pytest.raises(NotFoundError):
            client.manifest("team/app", "v1")
        # and the next push completes, reusing what already landed
        done = push_archive(client, archive, "team/app:v1")
        assert done.skipped_blobs >= 1
        assert client.tags("team/app") == ["v1"]


def test_corrupt_archive_is_refused_before_any_manifest(registry, tmp_path):
    layers = _layers()
    archive = tmp_path / "bad.tar"
    wrong_config = make_config([make_layer({"other": b"x"})] * len(layers))  # diff_ids do not match
    make_docker_save(archive, layers, config=wrong_config)
    with RegistryClient(registry.url) as client:
        with pytest.raises(InvalidInputError) as err:
            push_archive(client, archive, "team/bad:v1")
        assert "diff_id" in str(err.value)
        assert client.tags("team/bad") == []


def test_bad_inputs_are_one_line(registry, tmp_path):
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"hello")
    with RegistryClient(registry.url) as client:
        for archive, target in [(not_tar, "a/b:c"), (tmp_path / "missing.tar", "a/b:c")]:
            with pytest.raises(PaiError) as err:
                push_archive(client, archive, target)
            assert "\n" not in str(err.value)
        good = tmp_path / "good.tar"
        make_docker_save(good, _layers()[:1])
        with pytest.raises(InvalidInputError):
            push_archive(client, good, "Bad Name:v1")
        with pytest.raises(InvalidInputError):
            push_archive(client, good, "other.host:5000/a/b:v1")


def test_archive_with_gzipped_and_symlinked_layers(registry, tmp_path):
    """Layers already gzipped go up as they are; a layer stored as a symlink to an identical
    one (what docker save writes for repeated layers) is read through the link."""
    import io
    import tarfile

    raw = [make_layer({"a": os.urandom(5000)}), make_layer({"b": b"same"})]
    gz = gzip.compress(raw[0], mtime=0)
    config = make_config([raw[0], raw[1], raw[1]])
    cfg_hex = hashlib.sha256(config).hexdigest()
    archive = tmp_path / "mixed.tar"
    with tarfile.open(archive, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("l1/layer.tar", gz)
        add("l2/layer.tar", raw[1])
        link = tarfile.TarInfo("l3/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../l2/layer.tar"
        tar.addfile(link)
        add(f"{cfg_hex}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{cfg_hex}.json", "RepoTags": ["m/x:1"],
                                          "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"]}]).encode())
    with RegistryClient(registry.url) as client:
        result = push_archive(client, archive, "team/mixed:v1")
        layers = client.manifest("team/mixed", "v1").data["layers"]
        assert layers[0]["digest"] == "sha256:" + hashlib.sha256(gz).hexdigest()  # uploaded unchanged
        assert layers[1]["digest"] == layers[2]["digest"]
        assert gzip.decompress(b"".join(client.iter_blob("team/mixed", layers[2]["digest"]))) == raw[1]
    assert result.uploaded_blobs == 3 and result.skipped_blobs == 1  # the repeated layer went up once
