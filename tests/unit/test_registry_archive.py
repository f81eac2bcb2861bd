"""Reading docker-save archives and the streaming gzip, without a registry."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.registry.push import LayerDigestCache, gzip_while_hashing, read_archive
from tests.fixtures.registry import make_config, make_docker_save, make_layer


class _CountingReader(io.BytesIO):
    """Records the largest read so the test can tell streaming from slurping."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0

    def read(self, n: int = -1) -> bytes:
        self.largest = max(self.largest, n if n >= 0 else len(self.getvalue()))
        return super().read(n)


def test_gzip_while_hashing_is_deterministic_and_streams():
    data = bytes(range(256)) * 20000  # ~5 MB
    out1, out2 = io.BytesIO(), io.BytesIO()
    src = _CountingReader(data)
    raw1, gz1, size1 = gzip_while_hashing(src, out1)
    raw2, gz2, size2 = gzip_while_hashing(io.BytesIO(data), out2)
    assert src.largest <= 1024 * 1024  # read piece by piece, never whole
    assert raw1 == "sha256:" + hashlib.sha256(data).hexdigest()
    assert gz1 == gz2 == "sha256:" + hashlib.sha256(out1.getvalue()).hexdigest()
    assert size1 == size2 == len(out1.getvalue())
    assert gzip.decompress(out1.getvalue()) == data


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_read_archive_both_layouts(tmp_path, layout):
    layers = [make_layer({"a": b"1"}), make_layer({"b": b"2" * 5000})]
    path = tmp_path / "img.tar"
    config = make_docker_save(path, layers, layout=layout, repo_tag="team/app:v3")
    with tarfile.open(path) as tar:
        img = read_archive(tar, path)
    assert img.layout == layout
    assert img.config == config
    assert [layer.diff_id for layer in img.layers] == ["sha256:" + hashlib.sha256(blob).hexdigest() for blob in layers]
    assert img.manifest_media_type.endswith(("manifest.v2+json", "manifest.v1+json"))


def test_archive_with_several_images_needs_a_choice(tmp_path):
    path = tmp_path / "two.tar"
    layer = make_layer({"x": b"x"})
    cfg = make_config([layer])
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    with tarfile.open(path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("l/layer.tar", layer)
        add(f"{cfg_hex}.json", cfg)
        add("manifest.json", json.dumps([
            {"Config": f"{cfg_hex}.json", "RepoTags": ["a/one:1"], "Layers": ["l/layer.tar"]},
            {"Config": f"{cfg_hex}.json", "RepoTags": ["a/two:2"], "Layers": ["l/layer.tar"]}]).encode())
    with tarfile.open(path) as tar:
        with pytest.raises(InvalidInputError) as err:
            read_archive(tar, path)
        assert "a/one:1" in str(err.value) and "a/two:2" in str(err.value)
        assert read_archive(tar, path, "a/two:2").names == ["a/two:2"]
        with pytest.raises(InvalidInputError):
            read_archive(tar, path, "a/three")


def test_archive_without_index_is_refused(tmp_path):
    path = tmp_path / "plain.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    with tarfile.open(path) as tar:
        with pytest.raises(InvalidInputError) as err:
            read_archive(tar, path)
    assert "docker save" in str(err.value)


def test_layer_digest_cache_round_trip(tmp_path):
    cache = LayerDigestCache(tmp_path / "c.json")
    assert cache.get("sha256:x") is None
    cache.put("sha256:x", "sha256:gz", 12, "team/a")
    assert LayerDigestCache(tmp_path / "c.json").get("sha256:x") == ("sha256:gz", 12, "team/a")
    (tmp_path / "c.json").write_text("garbage")
    assert cache.get("sha256:x") is None
