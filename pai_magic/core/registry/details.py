"""Image details for ``--details``: digest, compressed size, created, OS/architecture.

Why it is its own module: each row needs a manifest GET and a config-blob GET (two for every
platform of a multi-arch image), so rows are fetched through the client's bounded pool and
every by-digest answer (child manifests, config blobs) comes from the client's digest cache:
images built from the same base share configs across repositories and tags.
"""
from __future__ import annotations

import json
from typing import Any

from pai_magic.core.errors import NotFoundError, ServerError
from pai_magic.core.registry.client import Manifest, RegistryClient
from pai_magic.core.registry.models import ImageDetail, RepositoryTags


def _is_attestation(entry: dict[str, Any]) -> bool:
    """buildx attaches provenance manifests as ``unknown/unknown`` index entries: not a platform."""
    annotations = entry.get("annotations") or {}
    platform = entry.get("platform") or {}
    return (annotations.get("vnd.docker.reference.type") == "attestation-manifest"
            or (platform.get("os") == "unknown" and platform.get("architecture") == "unknown"))


def _config(client: RegistryClient, repository: str, manifest: Manifest) -> dict[str, Any]:
    desc = manifest.data.get("config") or {}
    digest = desc.get("digest")
    if not digest:
        return {}
    try:
        data = json.loads(client.blob(repository, digest))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _row(client: RegistryClient, repository: str, tag: str, top: Manifest, manifest: Manifest,
         platform: dict[str, Any] | None = None) -> ImageDetail:
    layers = manifest.data.get("layers") or []
    size = sum(int(layer.get("size") or 0) for layer in layers)
    config = _config(client, repository, manifest)
    platform = platform or {}
    return ImageDetail(
        repository=repository,
        tag=tag,
        digest=top.digest,
        media_type=top.media_type,
        size=size,
        created=config.get("created"),
        os=config.get("os") or platform.get("os"),
        architecture=config.get("architecture") or platform.get("architecture"),
        variant=config.get("variant") or platform.get("variant"),
        platform_digest=manifest.digest if manifest is not top else None,
    )


def tag_details(client: RegistryClient, repository: str, tag: str) -> list[ImageDetail]:
    """One row per platform of ``repository:tag`` (one row for a single-arch image)."""
    try:
        top = client.manifest(repository, tag)
        if not top.is_index:
            return [_row(client, repository, tag, top, top)]
        rows = []
        for entry in top.data.get("manifests") or []:
            if not entry.get("digest") or _is_attestation(entry):
                continue
            child = client.manifest(repository, entry["digest"])
            rows.append(_row(client, repository, tag, top, child, entry.get("platform")))
        return rows or [ImageDetail(repository, tag, top.digest, top.media_type, error="empty index")]
    except (NotFoundError, ServerError) as exc:
        # deleted or broken between listing and details: show it on its row, keep the others
        return [ImageDetail(repository, tag, "", "", error=str(exc))]


def image_details(client: RegistryClient, listing: list[RepositoryTags] | None = None,
                  pattern: str | None = None, *, workers: int | None = None) -> list[ImageDetail]:
    """Rows for every tag of ``listing`` (default: the whole registry matching ``pattern``)."""
    if listing is None:
        listing = client.list_images(pattern, workers=workers)
    pairs = [(item.repository, tag) for item in listing for tag in item.tags]
    per_tag = client.map(lambda pair: tag_details(client, *pair), pairs, workers)
    return [row for rows in per_tag for row in rows]
