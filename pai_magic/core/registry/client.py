"""A thin Docker registry (HTTP API v2) client: catalog, tags, manifests, blobs, tag, delete.

Why our own: the Python registry libraries are unmaintained, lack ``_catalog`` or refuse plain
HTTP. What this client gets right (FACTS.md): ``Link`` paging followed verbatim (relative
links, never stopping on a short page), empty repositories are not errors, every manifest GET
accepts all four manifest types, anything fetched by digest is cached (it cannot change), and
``tags/list`` of many repositories fans out over a bounded thread pool.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import requests

from pai_magic.core.errors import ConflictError, InvalidInputError, NotFoundError, PaiError, ServerError
from pai_magic.core.registry.auth import Credentials, docker_config_credentials
from pai_magic.core.registry.models import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    DeleteResult,
    ImageRef,
    RepositoryTags,
    parse_reference,
)
from pai_magic.core.registry.transport import DEFAULT_TIMEOUT, RegistryTransport, with_query

MAX_PAGE = 1000  # distribution answers 400 above this
DEFAULT_WORKERS = 8
SMALL_BLOB = 4 * 1024 * 1024  # config blobs are cached in memory, layers never
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stored it: the raw bytes are what the digest is over."""

    media_type: str
    digest: str
    raw: bytes
    data: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or ("manifests" in self.data and "layers" not in self.data)


class _LRU:
    """A small thread-safe LRU for content addressed by digest (immutable, so never stale)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _verify(data: bytes, digest: str, what: str) -> None:
    algo, _, _ = digest.partition(":")
    if algo == "sha256" and sha256_digest(data) != digest:
        raise ServerError(f"The registry sent {what} whose content does not match {digest[:19]}: "
                          "retry; if it persists the registry storage is corrupt.")


def _next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of a Link header, exactly as given (often relative)."""
    if not header:
        return None
    for link in requests.utils.parse_header_links(header):
        if link.get("rel", "").strip('"').lower() == "next" and link.get("url"):
            return link["url"]
    return None


def match_filter(name: str, pattern: str | None) -> bool:
    """A glob when the filter has ``* ? [``, otherwise a substring (what people type)."""
    if not pattern:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class RegistryClient:
    """Everything pai_magic does with a registry; credentials never leave this object.

    ``username``/``password`` default to the ``auths`` entry of ``~/.docker/config.json``
    for this registry's host (``docker_config=False`` disables that lookup).
    """

    def __init__(self, url: str, username: str | None = None, password: str | None = None, *,
                 docker_config: Path | bool | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 workers: int = DEFAULT_WORKERS, cache_size: int = 4096) -> None:
        if workers < 1:
            raise InvalidInputError("workers must be at least 1.")
        self.workers = workers
        credentials: Credentials | None = None
        if username:
            credentials = Credentials(username, password or "")
        self.transport = RegistryTransport(url, None, timeout=timeout, pool_size=max(workers, 4) + 2)
        if credentials is None and docker_config is not False:
            path = docker_config if isinstance(docker_config, Path) else None
            credentials = docker_config_credentials(self.transport.host, path)
        self.transport.auth.credentials = credentials
        self._manifests = _LRU(cache_size)
        self._blobs = _LRU(max(64, cache_size // 8))

    @classmethod
    def from_profile(cls, profile: Any = None, **kwargs: Any) -> "RegistryClient":
        """The registry of ``profile``: a Profile, a profile name, or None for the current one.

        With no usable profile, ``PAI_REGISTRY`` (+ ``PAI_REGISTRY_USER`` /
        ``PAI_REGISTRY_PASSWORD``) still works: pushing images needs no cluster login.
        """
        import os

        if profile is None or isinstance(profile, str):
            from pai_magic.core.profiles import load_profile

            try:
                profile = load_profile(profile)
            except PaiError:
                if isinstance(profile, str):
                    raise  # a profile the person named must exist
                profile = None
        url = getattr(profile, "registry_url", None)
        user = getattr(profile, "registry_user", None)
        password = getattr(profile, "registry_password", None)
        if not url and os.environ.get("PAI_REGISTRY", "").strip():
            from pai_magic.core.profiles import normalize_registry_url

            url = normalize_registry_url(os.environ["PAI_REGISTRY"])
            user = os.environ.get("PAI_REGISTRY_USER") or None
            password = os.environ.get("PAI_REGISTRY_PASSWORD") or None
        if not url:
            raise InvalidInputError("No registry configured: set PAI_REGISTRY=http://HOST:5000 or registry_url "
                                    "in the profile.")
        return cls(url, user, password, **kwargs)

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r}, workers={self.workers})"

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    @property
    def url(self) -> str:
        return self.transport.url

    @property
    def host(self) -> str:
        """``host:port`` as it goes in front of an image name (``10.0.0.5:5000/team/img``)."""
        return self.transport.host

    def ref(self, text: str, *, default_tag: str | None = "latest") -> ImageRef:
        return parse_reference(text, self.host, default_tag=default_tag)

    def map(self, fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
        """``fn`` over ``items`` through a bounded pool, results in input order."""
        items = list(items)
        n = min(workers or self.workers, max(1, len(items)))
        if n <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="pai-registry") as pool:
            return list(pool.map(fn, items))

    # ------------------------------------------------------------------ listing
    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks API v2, and our credentials are accepted."""
        self.transport.fast_get("/v2/", scopes=(), what="the registry API root")

    def _paged(self, first: str, key: str, scopes: list[str], what: str, *, empty_ok: bool) -> Iterator[str]:
        """Follow ``Link: <...>; rel="next"`` verbatim until none comes; never stop on a short page."""
        path: str | None = first
        seen: set[str] = set()
        while path:
            if path in seen:
                raise ServerError(f"The registry's Link header for {what} loops back to {path}: report it to its admin.")
            seen.add(path)
            reply = self.transport.fast_get(path, scopes=scopes, what=what, ok={404} if empty_ok else ())
            if reply.status == 404:
                return  # NAME_UNKNOWN on tags/list: a repository with no tags left is empty
            data = reply.json()
            items = data.get(key) if isinstance(data, dict) else None
            for item in items or ():  # "tags": null is an empty repository
                yield str(item)
            path = _next_link(reply.headers.get("Link"))

    def catalog(self, page_size: int = MAX_PAGE) -> Iterator[str]:
        """Every repository name, page by page (``n`` at most 1000)."""
        if not 1 <= page_size <= MAX_PAGE:
            raise InvalidInputError(f"page size {page_size} is out of range: the registry accepts 1..{MAX_PAGE}.")
        yield from self._paged(with_query("/v2/_catalog", {"n": page_size}), "repositories",
                               ["registry:catalog:*"], "the catalog", empty_ok=False)

    def repositories(self, pattern: str | None = None, page_size: int = MAX_PAGE) -> list[str]:
        return [name for name in self.catalog(page_size) if match_filter(name, pattern)]

    def tags(self, repository: str, page_size: int | None = None, *, missing_ok: bool = True) -> list[str]:
        """The tags of ``repository``, sorted; [] when it has none (``"tags": null``, or
        404 NAME_UNKNOWN, which a catalog entry whose tags were all deleted can answer).

        ``missing_ok=False`` is for a repository the person named: NAME_UNKNOWN is then a
        one-line ``NotFoundError`` instead of an empty list.
        """
        if page_size is not None and not 1 <= page_size <= MAX_PAGE:
            raise InvalidInputError(f"page size {page_size} is out of range: the registry accepts 1..{MAX_PAGE}.")
        first = with_query(f"/v2/{repository}/tags/list", {"n": page_size})
        return sorted(self._paged(first, "tags", [pull_scope(repository)], f"repository {repository}",
                                  empty_ok=missing_ok))

    def list_images(self, pattern: str | None = None, *, with_tags: bool = True,
                    workers: int | None = None) -> list[RepositoryTags]:
        """Every repository (matching ``pattern``) and, concurrently, its tags."""
        names = self.repositories(pattern)
        if not with_tags:
            return [RepositoryTags(n, []) for n in names]
        tag_lists = self.map(self.tags, names, workers)
        return [RepositoryTags(n, t) for n, t in zip(names, tag_lists)]

    # ------------------------------------------------------------------ manifests
    def manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest with all four Accept types; by-digest answers come from the cache."""
        if ":" in reference:
            cached: Manifest | None = self._manifests.get(reference)
            if cached is not None:
                return cached
        what = f"image {repository}:{reference}" if ":" not in reference else f"image {repository}@{reference[:19]}"
        resp = self.transport.request("GET", f"/v2/{repository}/manifests/{reference}",
                                      scopes=[pull_scope(repository)], what=what,
                                      headers={"Accept": MANIFEST_ACCEPT})
        raw = resp.content
        if ":" in reference:
            _verify(raw, reference, f"manifest {repository}@{reference[:19]}")
            digest = reference
        else:
            digest = resp.headers.get("Docker-Content-Digest") or sha256_digest(raw)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ServerError(f"The manifest of {what} is not JSON: the registry or a proxy mangled it.") from exc
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            media_type = str(data.get("mediaType") or media_type)
        manifest = Manifest(media_type, digest, raw, data if isinstance(data, dict) else {})
        self._manifests.put(digest, manifest)
        return manifest

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """HEAD a manifest: its digest, or None when the tag does not exist."""
        reply = self.transport.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                       scopes=[pull_scope(repository)], what=f"image {repository}:{reference}",
                                       headers={"Accept": MANIFEST_ACCEPT}, ok={404})
        if reply.status_code == 404:
            return None
        digest = reply.headers.get("Docker-Content-Digest")
        if not digest:
            digest = self.manifest(repository, reference).digest
        return digest

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        resp = self.transport.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                      scopes=[push_scope(repository)], what=f"image {repository}:{reference}",
                                      headers={"Content-Type": media_type}, data=raw)
        digest = resp.headers.get("Docker-Content-Digest") or sha256_digest(raw)
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.transport.request("DELETE", f"/v2/{repository}/manifests/{digest}",
                               scopes=[f"repository:{repository}:delete"],
                               what=f"delete of image {repository}@{digest[:19]}", ok={202})

    # ------------------------------------------------------------------ blobs
    def blob_size(self, repository: str, digest: str) -> int | None:
        """HEAD a blob: its size when the repository has it, else None."""
        resp = self.transport.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=[pull_scope(repository)],
                                      what=f"blob {digest[:19]} of {repository}", ok={404})
        if resp.status_code == 404:
            return None
        try:
            return int(resp.headers.get("Content-Length", "0"))
        except ValueError:
            return 0

    def blob(self, repository: str, digest: str) -> bytes:
        """A small blob (a config) in memory, verified and cached by digest."""
        cached: bytes | None = self._blobs.get(digest)
        if cached is not None:
            return cached
        resp = self.transport.request("GET", f"/v2/{repository}/blobs/{digest}", scopes=[pull_scope(repository)],
                                      what=f"blob {digest[:19]} of {repository}", stream=True)
        try:
            length = int(resp.headers.get("Content-Length") or 0)
            if length > SMALL_BLOB:
                raise InvalidInputError(f"Blob {digest[:19]} is {length} bytes: read it with iter_blob().")
            data = resp.content
        finally:
            resp.close()
        _verify(data, digest, f"blob {digest[:19]}")
        if len(data) <= SMALL_BLOB:
            self._blobs.put(digest, data)
        return data

    def iter_blob(self, repository: str, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream a blob of any size; the digest is verified when the stream ends."""
        resp = self.transport.request("GET", f"/v2/{repository}/blobs/{digest}", scopes=[pull_scope(repository)],
                                      what=f"blob {digest[:19]} of {repository}", stream=True)
        hasher = hashlib.sha256()
        try:
            for chunk in resp.iter_content(chunk_size):
                hasher.update(chunk)
                yield chunk
        finally:
            resp.close()
        if digest.startswith("sha256:") and "sha256:" + hasher.hexdigest() != digest:
            raise ServerError(f"Blob {digest[:19]} of {repository} did not match its digest: retry.")

    def _start_upload(self, repository: str, params: dict[str, str] | None = None) -> requests.Response:
        return self.transport.request("POST", f"/v2/{repository}/blobs/uploads/", params=params,
                                      scopes=[push_scope(repository)] + (
                                          [pull_scope(params["from"])] if params and "from" in params else []),
                                      what=f"upload to {repository}", ok={201, 202})

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount (no data moves); False when the registry could not mount."""
        resp = self._start_upload(repository, {"mount": digest, "from": from_repository})
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:  # the registry opened a normal upload instead: cancel it
            try:
                self.transport.request("DELETE", location, scopes=[push_scope(repository)],
                                       what=f"upload to {repository}", ok={404})
            except PaiError:
                pass
        return False

    def upload_blob(self, repository: str, chunks: Iterable[bytes], digest: str, *,
                    on_chunk: Callable[[int], None] | None = None) -> int:
        """POST, one PATCH per chunk, then PUT ``?digest=``; returns the bytes sent.

        The registry checks the digest at the PUT: a corrupt or truncated stream cannot land.
        """
        resp = self._start_upload(repository)
        location = resp.headers.get("Location")
        if not location:
            raise ServerError(f"The registry opened an upload to {repository} without a Location header.")
        offset = 0
        scopes = [push_scope(repository)]
        for chunk in chunks:
            if not chunk:
                continue
            end = offset + len(chunk) - 1
            resp = self.transport.request("PATCH", location, scopes=scopes, what=f"upload to {repository}",
                                          headers={"Content-Type": "application/octet-stream",
                                                   "Content-Range": f"{offset}-{end}"},
                                          data=chunk, ok={202})
            location = resp.headers.get("Location") or location
            offset = end + 1
            if on_chunk:
                on_chunk(offset)
        self.transport.request("PUT", location, params={"digest": digest}, scopes=scopes,
                               what=f"upload of blob {digest[:19]} to {repository}",
                               headers={"Content-Type": "application/octet-stream"}, data=b"", ok={201})
        return offset

    def upload_small_blob(self, repository: str, data: bytes) -> str:
        """A monolithic upload for a small blob (a config): POST then PUT with the body."""
        digest = sha256_digest(data)
        resp = self._start_upload(repository)
        location = resp.headers.get("Location")
        if not location:
            raise ServerError(f"The registry opened an upload to {repository} without a Location header.")
        self.transport.request("PUT", location, params={"digest": digest}, scopes=[push_scope(repository)],
                               what=f"upload of blob {digest[:19]} to {repository}",
                               headers={"Content-Type": "application/octet-stream"}, data=data, ok={201})
        return digest

    # ------------------------------------------------------------------ tag and delete
    def _ensure_manifest_in(self, manifest: Manifest, src_repo: str, dst_repo: str) -> None:
        """Make everything ``manifest`` references exist in ``dst_repo`` (mount, never download)."""
        if src_repo == dst_repo:
            return
        if manifest.is_index:
            for child in manifest.data.get("manifests") or []:
                digest = child.get("digest")
                if not digest:
                    continue
                sub = self.manifest(src_repo, digest)
                self._ensure_manifest_in(sub, src_repo, dst_repo)
                self.put_manifest(dst_repo, digest, sub.raw, sub.media_type)
            return
        refs = [manifest.data.get("config") or {}] + list(manifest.data.get("layers") or [])
        for desc in refs:
            digest = desc.get("digest")
            if not digest or self.blob_size(dst_repo, digest) is not None:
                continue
            if not self.mount_blob(dst_repo, digest, src_repo):
                raise ServerError(f"The registry could not mount blob {digest[:19]} from {src_repo} into "
                                  f"{dst_repo}: push the image to {dst_repo} instead.")

    def tag(self, source: str, target: str) -> str:
        """Give ``source`` another name: a manifest copy (same bytes, same media type), no layers move."""
        src = self.ref(source)
        dst = self.ref(target)
        if dst.digest:
            raise InvalidInputError(f"The new name {target!r} must be REPO:TAG, not a digest.")
        manifest = self.manifest(src.repository, src.reference)
        self._ensure_manifest_in(manifest, src.repository, dst.repository)
        digest = self.put_manifest(dst.repository, dst.tag or "latest", manifest.raw, manifest.media_type)
        if digest != manifest.digest:
            raise ServerError(f"The registry stored {target} under {digest[:19]} instead of "
                              f"{manifest.digest[:19]}: it rewrote the manifest; check its version.")
        return digest

    def delete(self, reference: str, *, force: bool = False) -> DeleteResult:
        """Delete the manifest a tag points at (registries delete by digest).

        Every other tag on the same digest would disappear with it, so they are found first:
        without ``force`` such a delete is refused (ConflictError naming them), because
        removing ``team/x:old`` must not silently take ``team/x:prod`` along. With ``force``
        they go too and are returned for the face to name.
        """
        ref = self.ref(reference)
        digest = ref.digest or self.manifest_digest(ref.repository, ref.tag or "latest")
        if digest is None:
            tags = self.tags(ref.repository, missing_ok=False)
            known = ", ".join(tags[:10]) + (" ..." if len(tags) > 10 else "") if tags else "none"
            raise NotFoundError(f"{ref} does not exist; tags of {ref.repository}: {known}.")
        others = [t for t in self.tags(ref.repository) if t != ref.tag]
        digests = self.map(lambda t: self.manifest_digest(ref.repository, t), others)
        sharing = [t for t, d in zip(others, digests) if d == digest]
        if sharing and not force:
            raise ConflictError(
                f"{ref} is the same image as {', '.join(sharing)}: registries delete by digest, so those tags "
                f"would go too. Delete with --force to remove them all, or keep the image.")
        self.delete_manifest(ref.repository, digest)
        return DeleteResult(str(ref), digest, sharing)


def open_registry(url: str | None = None, profile: Any = None, **kwargs: Any) -> RegistryClient:
    """The registry a face should talk to: ``url`` when given (credentials from
    ``PAI_REGISTRY_USER`` / ``PAI_REGISTRY_PASSWORD`` or ~/.docker/config.json), else the
    profile's (a Profile, a profile name, or None for the current one), else ``PAI_REGISTRY``."""
    if url:
        import os

        from pai_magic.core.profiles import normalize_registry_url

        return RegistryClient(normalize_registry_url(url) or url, os.environ.get("PAI_REGISTRY_USER") or None,
                              os.environ.get("PAI_REGISTRY_PASSWORD") or None, **kwargs)
    return RegistryClient.from_profile(profile, **kwargs)
