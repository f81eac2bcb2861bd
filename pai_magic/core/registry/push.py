"""Push a ``docker save`` archive to a registry without a Docker daemon.

Both layouts ``docker save`` has produced: the classic one (``manifest.json`` naming a config
file and ``<id>/layer.tar`` files) and the OCI image layout of Docker 25+ (``index.json`` ->
manifest -> ``blobs/sha256/...``); skopeo's ``docker-archive:`` output is the classic one.

Why it is built this way:
- layers in a save are uncompressed tars; a registry wants compressed blobs. Each layer is
  gzipped while hashed, streaming from the tar into a spool file (never whole in memory),
  with a deterministic gzip (no timestamp) so the same layer always gets the same digest;
  the uncompressed digest is checked against the config's ``diff_ids`` on the way.
- a small cache (diff_id -> compressed digest) in the data dir lets a re-push HEAD the
  registry and skip a layer without compressing it again.
- blobs go first (HEAD, then POST + PATCH chunks + PUT ``?digest=``), the config blob
  unchanged (its digest is the image ID), and the manifest PUT last: an interrupted push
  leaves unreferenced blobs at worst, never a tag pointing at missing blobs.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.paths import data_dir
from pai_magic.core.registry.client import RegistryClient, sha256_digest
from pai_magic.core.registry.models import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    PushProgress,
    PushResult,
)

DEFAULT_CHUNK = 8 * 1024 * 1024
READ_SIZE = 1024 * 1024
GZIP_LEVEL = 6
GZIP_MAGIC = b"\x1f\x8b"
_UNCOMPRESSED_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": DOCKER_LAYER_GZIP,
}

Progress = Callable[[PushProgress], None]


@dataclass
class LayerSource:
    """One layer inside the archive and what we know about it before reading it."""

    member: str
    diff_id: str | None
    media_type: str | None  # from an OCI manifest; None in the classic layout
    compressed: bool | None  # None: look at the first bytes


@dataclass
class ArchiveImage:
    """What a ``docker save`` tar holds for one image."""

    layout: str  # "docker" or "oci"
    config: bytes
    config_media_type: str
    manifest_media_type: str
    layers: list[LayerSource]
    names: list[str]


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        fh = tar.extractfile(name.lstrip("./") if name.startswith("./") else name)
    except KeyError:
        fh = None
    if fh is None:
        raise InvalidInputError(f"The archive lacks {name}: it is not a complete docker save tar.")
    with fh:
        return fh.read()


def _json_member(tar: tarfile.TarFile, name: str) -> object:
    try:
        return json.loads(_read_member(tar, name))
    except ValueError as exc:
        raise InvalidInputError(f"{name} in the archive is not JSON: the tar is damaged; save it again.") from exc


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _pick(candidates: list[tuple[list[str], object]], image: str | None, archive: Path) -> object:
    if image is None:
        if len(candidates) == 1:
            return candidates[0][1]
        listed = ", ".join(n for names, _ in candidates for n in names) or f"{len(candidates)} unnamed images"
        raise InvalidInputError(f"{archive.name} holds several images ({listed}): say which one with image=.")
    for names, item in candidates:
        if image in names or any(n.endswith("/" + image) or n.split(":")[0] == image for n in names):
            return item
    listed = ", ".join(n for names, _ in candidates for n in names) or "no named images"
    raise InvalidInputError(f"{archive.name} has no image {image!r}; it holds: {listed}.")


def read_archive(tar: tarfile.TarFile, archive: Path, image: str | None = None) -> ArchiveImage:
    """Parse the archive's index: OCI ``index.json`` when present, else ``manifest.json``."""
    names = set(tar.getnames())
    names |= {n[2:] for n in names if n.startswith("./")}
    if "index.json" in names and "oci-layout" in names:
        return _read_oci(tar, archive, image)
    if "manifest.json" in names:
        return _read_classic(tar, archive, image)
    raise InvalidInputError(f"{archive.name} has neither manifest.json nor index.json: make it with "
                            "`docker save IMAGE -o FILE.tar`.")


def _read_classic(tar: tarfile.TarFile, archive: Path, image: str | None) -> ArchiveImage:
    entries = _json_member(tar, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError("manifest.json in the archive lists no image: save the image again.")
    entry = _pick([(list(e.get("RepoTags") or []), e) for e in entries if isinstance(e, dict)], image, archive)
    assert isinstance(entry, dict)
    config = _read_member(tar, str(entry.get("Config")))
    try:
        diff_ids = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
    except (ValueError, AttributeError) as exc:
        raise InvalidInputError("The image config in the archive is not JSON: save the image again.") from exc
    layer_names = list(entry.get("Layers") or [])
    if len(diff_ids) != len(layer_names):
        raise InvalidInputError(f"The archive lists {len(layer_names)} layers but its config has "
                                f"{len(diff_ids)} diff_ids: save the image again.")
    layers = [LayerSource(name, diff, None, None) for name, diff in zip(layer_names, diff_ids)]
    return ArchiveImage("docker", config, DOCKER_CONFIG, DOCKER_MANIFEST, layers,
                        list(entry.get("RepoTags") or []))


def _read_oci(tar: tarfile.TarFile, archive: Path, image: str | None) -> ArchiveImage:
    index = _json_member(tar, "index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not manifests:
        raise InvalidInputError("index.json in the archive lists no image: save the image again.")
    candidates = []
    for desc in manifests:
        ann = desc.get("annotations") or {}
        labels = [v for v in (ann.get("io.containerd.image.name"), ann.get("org.opencontainers.image.ref.name")) if v]
        candidates.append((labels, desc))
    desc = _pick(candidates, image, archive)
    assert isinstance(desc, dict)
    manifest = _json_member(tar, _blob_path(str(desc["digest"])))
    assert isinstance(manifest, dict)
    media = str(desc.get("mediaType") or manifest.get("mediaType") or OCI_MANIFEST)
    if media in INDEX_TYPES or "manifests" in manifest:
        raise InvalidInputError("This archive holds a multi-platform image: save one platform with "
                                "`docker save --platform linux/amd64 ...` and push that.")
    cdesc = manifest.get("config") or {}
    config = _read_member(tar, _blob_path(str(cdesc.get("digest"))))
    try:
        diff_ids = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
    except (ValueError, AttributeError) as exc:
        raise InvalidInputError("The image config in the archive is not JSON: save the image again.") from exc
    layers = []
    for i, ldesc in enumerate(manifest.get("layers") or []):
        ltype = str(ldesc.get("mediaType") or "")
        compressed = None if not ltype else ltype not in _UNCOMPRESSED_TYPES
        layers.append(LayerSource(_blob_path(str(ldesc["digest"])), diff_ids[i] if i < len(diff_ids) else None,
                                  ltype or None, compressed))
    return ArchiveImage("oci", config, str(cdesc.get("mediaType") or OCI_CONFIG), media, layers,
                        [n for names, _ in candidates for n in names])


# ---------------------------------------------------------------------------- layer cache
class LayerDigestCache:
    """diff_id -> compressed {digest, size}: lets a re-push skip a layer without gzipping it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (data_dir() / "registry" / "compressed-layers.json")
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, diff_id: str | None) -> tuple[str, int, str | None] | None:
        """(compressed digest, size, a repository it was pushed to) for ``diff_id``."""
        if not diff_id:
            return None
        entry = self._load().get(diff_id)
        if isinstance(entry, dict):
            digest, size, repo = entry.get("digest"), entry.get("size"), entry.get("repository")
            if isinstance(digest, str) and isinstance(size, int):
                return digest, size, repo if isinstance(repo, str) else None
        return None

    def put(self, diff_id: str | None, digest: str, size: int, repository: str | None = None) -> None:
        if not diff_id:
            return
        with self._lock:
            data = self._load()
            data[diff_id] = {"digest": digest, "size": size, "repository": repository}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=str(self.path.parent), prefix=".layers.", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)


# ---------------------------------------------------------------------------- streaming
def gzip_while_hashing(src: IO[bytes], dst: IO[bytes], level: int = GZIP_LEVEL) -> tuple[str, str, int]:
    """Gzip ``src`` into ``dst`` piece by piece; returns (uncompressed digest, gz digest, gz size).

    ``wbits=31`` writes a gzip header with no file name and mtime 0, so the output (and its
    digest) depends only on the content: the same layer compresses to the same blob.
    """
    raw_hash = hashlib.sha256()
    gz_hash = hashlib.sha256()
    size = 0
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    while True:
        piece = src.read(READ_SIZE)
        if not piece:
            break
        raw_hash.update(piece)
        out = comp.compress(piece)
        if out:
            gz_hash.update(out)
            dst.write(out)
            size += len(out)
    out = comp.flush()
    gz_hash.update(out)
    dst.write(out)
    size += len(out)
    return "sha256:" + raw_hash.hexdigest(), "sha256:" + gz_hash.hexdigest(), size


def _hash_stream(src: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while True:
        piece = src.read(READ_SIZE)
        if not piece:
            return "sha256:" + h.hexdigest(), size
        h.update(piece)
        size += len(piece)


def _chunks(src: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while True:
        piece = src.read(chunk_size)
        if not piece:
            return
        yield piece


# ---------------------------------------------------------------------------- push
def push_archive(client: RegistryClient, archive: str | Path, target: str, *, image: str | None = None,
                 progress: Progress | None = None, chunk_size: int = DEFAULT_CHUNK,
                 cache: LayerDigestCache | None = None) -> PushResult:
    """Push the image in ``archive`` (a ``docker save`` tar) as ``target`` (``REPO:TAG``).

    ``image`` picks one image when the archive holds several. ``progress`` is called with a
    :class:`PushProgress` for every compressed layer, chunk sent, skipped blob and the manifest.
    """
    path = Path(archive).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"{archive} is not a file: give the path of a `docker save` tar.")
    ref = client.ref(target)
    if ref.digest:
        raise InvalidInputError(f"Push to a tag (REPO:TAG), not a digest: {target}.")
    repo = ref.repository
    cache = cache or LayerDigestCache()
    report = progress or (lambda p: None)
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInputError(f"{path.name} is not a tar archive: make it with `docker save IMAGE -o FILE.tar`.") from exc
    with tar, tempfile.TemporaryDirectory(prefix="pai-push-") as tmp:
        img = read_archive(tar, path, image)
        count = len(img.layers) + 1
        result = PushResult(str(ref), "", img.manifest_media_type)
        descriptors = []
        for i, layer in enumerate(img.layers):
            desc = _push_layer(client, tar, repo, layer, i, count, Path(tmp), cache, report, chunk_size, result)
            descriptors.append(desc)
            result.layers.append(str(desc["digest"]))
        # the config blob, byte for byte: its digest is the image ID
        config_digest = sha256_digest(img.config)
        if client.blob_size(repo, config_digest) is None:
            client.upload_small_blob(repo, img.config)
            result.uploaded_blobs += 1
            result.uploaded_bytes += len(img.config)
            report(PushProgress("config", count - 1, count, config_digest, len(img.config), len(img.config)))
        else:
            result.skipped_blobs += 1
            report(PushProgress("skip", count - 1, count, config_digest, len(img.config), len(img.config)))
        manifest = {
            "schemaVersion": 2,
            "mediaType": img.manifest_media_type,
            "config": {"mediaType": img.config_media_type, "size": len(img.config), "digest": config_digest},
            "layers": descriptors,
        }
        raw = json.dumps(manifest, indent=3).encode()
        report(PushProgress("manifest", count, count, sha256_digest(raw)))
        result.digest = client.put_manifest(repo, ref.tag or "latest", raw, img.manifest_media_type)
        report(PushProgress("done", count, count, result.digest))
        return result


def _open_layer(tar: tarfile.TarFile, member: str) -> IO[bytes]:
    try:
        fh = tar.extractfile(member)
    except KeyError:
        fh = None
    if fh is None:
        raise InvalidInputError(f"The archive lacks layer {member}: it is not a complete docker save tar.")
    return fh


def _push_layer(client: RegistryClient, tar: tarfile.TarFile, repo: str, layer: LayerSource, index: int,
                count: int, tmp: Path, cache: LayerDigestCache, report: Progress, chunk_size: int,
                result: PushResult) -> dict[str, object]:
    compressed = layer.compressed
    if compressed is None:
        with _open_layer(tar, layer.member) as fh:
            compressed = fh.read(2) == GZIP_MAGIC
    if compressed:
        media = layer.media_type or DOCKER_LAYER_GZIP
        with _open_layer(tar, layer.member) as fh:
            digest, size = _hash_stream(fh)
        source: Callable[[], IO[bytes]] = lambda: _open_layer(tar, layer.member)
    else:
        # classic layout: Docker types; OCI layout: the gzip twin of the archive's own type
        media = (DOCKER_LAYER_GZIP if layer.media_type is None
                 else _UNCOMPRESSED_TYPES.get(layer.media_type, OCI_LAYER_GZIP))
        known = cache.get(layer.diff_id)
        if known:
            k_digest, k_size, k_repo = known
            # present already, or mountable from the repository we pushed it to (no data moves)
            if client.blob_size(repo, k_digest) is not None or (
                    k_repo and k_repo != repo and client.mount_blob(repo, k_digest, k_repo)):
                result.skipped_blobs += 1
                report(PushProgress("skip", index, count, k_digest, k_size, k_size))
                return {"mediaType": media, "size": k_size, "digest": k_digest}
        spool = tmp / f"layer-{index}.gz"
        with _open_layer(tar, layer.member) as src, open(spool, "wb") as dst:
            report(PushProgress("compress", index, count, layer.diff_id))
            raw_digest, digest, size = gzip_while_hashing(src, dst)
        if layer.diff_id and raw_digest != layer.diff_id:
            raise InvalidInputError(f"Layer {index + 1} of the archive does not match its diff_id in the image "
                                    "config: the tar is damaged; save the image again.")
        cache.put(layer.diff_id, digest, size, repo)
        source = lambda: open(spool, "rb")  # noqa: E731
    if client.blob_size(repo, digest) is not None:
        result.skipped_blobs += 1
        report(PushProgress("skip", index, count, digest, size, size))
    else:
        with source() as fh:
            sent = client.upload_blob(
                repo, _chunks(fh, chunk_size), digest,
                on_chunk=lambda done: report(PushProgress("upload", index, count, digest, done, size)))
        result.uploaded_blobs += 1
        result.uploaded_bytes += sent
    return {"mediaType": media, "size": size, "digest": digest}
