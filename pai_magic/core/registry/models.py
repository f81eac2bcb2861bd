"""Plain data the registry core returns (faces render these, never raw HTTP answers)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pai_magic.core.errors import InvalidInputError

# Media types: the four manifest kinds every manifest GET must accept (FACTS.md).
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# The distribution reference grammar (repository path components, tag, digest).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


@dataclass(frozen=True)
class ImageRef:
    """``repository[:tag][@digest]`` inside one registry (the registry host is not part of it)."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, registry_host: str | None = None, *, default_tag: str | None = "latest") -> ImageRef:
    """Parse ``repo[:tag][@digest]``; a leading ``registry_host/`` (or ``http://host/``) is dropped.

    An image named with ANOTHER registry host is refused: silently pushing to or deleting
    from the configured registry instead would be worse than a one-line error.
    """
    raw = (text or "").strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    if not raw:
        raise InvalidInputError("The image name is empty: give it as REPO:TAG, e.g. team/train:v1.")
    first, sep, rest = raw.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if registry_host is not None and first.lower() != registry_host.lower():
            raise InvalidInputError(
                f"{text!r} names registry {first}, but the profile's registry is {registry_host}: "
                "drop the host part or switch profile.")
        raw = rest
    digest = None
    if "@" in raw:
        raw, digest = raw.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidInputError(f"{digest!r} is not a digest: write it as sha256:<64 hex digits>.")
    tag = None
    name = raw
    last = raw.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = raw.rsplit(":", 1)
        if not TAG_RE.match(tag):
            raise InvalidInputError(f"{tag!r} is not a valid tag: use letters, digits, '_', '.', '-' (max 128).")
    if not REPOSITORY_RE.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid repository name: lowercase letters, digits and . _ - separated by '/'.")
    if tag is None and digest is None:
        tag = default_tag
    return ImageRef(name, tag, digest)


@dataclass
class RepositoryTags:
    """One repository and its tags (empty when every tag was deleted)."""

    repository: str
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImageDetail:
    """One row of ``--details``: one tag on one platform.

    ``digest`` is the digest the tag points at (a manifest list's for multi-arch images);
    ``platform_digest`` is the per-platform manifest's digest when the tag is an index.
    ``size`` is the sum of the compressed layer sizes (what a pull downloads).
    """

    repository: str
    tag: str
    digest: str
    media_type: str
    size: int | None = None
    created: str | None = None
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    platform_digest: str | None = None
    error: str | None = None

    @property
    def platform(self) -> str:
        parts = [p for p in (self.os, self.architecture, self.variant) if p]
        return "/".join(parts) or "-"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["platform"] = self.platform
        return data


@dataclass
class PushProgress:
    """What a progress bar needs: which blob, how far, how many in total."""

    phase: str  # "compress", "upload", "skip", "config", "manifest", "done"
    blob_index: int
    blob_count: int
    digest: str | None = None
    done_bytes: int = 0
    total_bytes: int | None = None


@dataclass
class PushResult:
    """The pushed image and how much had to travel."""

    reference: str
    digest: str
    media_type: str
    uploaded_blobs: int = 0
    skipped_blobs: int = 0
    uploaded_bytes: int = 0
    layers: list[str] = field(default_factory=list)


@dataclass
class DeleteResult:
    """A deleted manifest and the other tags that pointed at it (they are gone too)."""

    reference: str
    digest: str
    other_tags: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        if not self.other_tags:
            return None
        return (f"{self.digest[:19]} was also tagged {', '.join(self.other_tags)}: "
                "the registry deletes by digest, so those tags are gone too.")


def human_size(size: int | None) -> str:
    """Bytes as people read them (``12.3 MB``); registries report compressed sizes."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover
