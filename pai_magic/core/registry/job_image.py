"""Turn an image a person names into what a job's ``dockerimage`` prerequisite needs.

Why: OpenPAI pulls ``team/train:v1`` from Docker Hub unless the registry host is part of the
``uri`` (``10.0.0.5:5000/team/train:v1``), and a private registry's password must travel
through the job's ``secrets`` (``<% $secrets.x %>``), never in clear. The protocol engineer's
``JobSpec.registry_auth`` = ``(username, password, registryuri)`` does the secrets part; this
module decides the ``uri`` and whether auth applies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pai_magic.core.errors import InvalidInputError, PaiError
from pai_magic.core.registry.client import RegistryClient
from pai_magic.core.registry.models import parse_reference


@dataclass(frozen=True)
class JobImage:
    """The prerequisite's ``uri`` and, for the profile's registry, the JobSpec ``registry_auth``."""

    uri: str
    private: bool
    registry_auth: tuple[str, str, str] | None = field(default=None, repr=False)


def _split_host(image: str) -> tuple[str | None, str]:
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, image


def job_image(image: str, registry_host: str | None = None, username: str | None = None,
              password: str | None = None, *, client: RegistryClient | None = None) -> JobImage:
    """Resolve ``image`` for a job.

    - ``10.0.0.5:5000/team/x:v1`` (or ``http://10.0.0.5:5000/team/x:v1``) on the profile's
      registry: kept with its host, auth added when credentials exist;
    - another registry host or a Docker Hub name (``ubuntu:22.04``): unchanged, no auth;
    - a bare ``team/x:v1`` when ``client`` is given and that tag exists on the profile's
      registry (one HEAD): the registry host is prefixed, auth added. This is what a person
      means right after ``%pai_image_push``; a missing tag falls through to Docker Hub, as
      ``docker pull`` would.
    """
    raw = (image or "").strip()
    if not raw:
        raise InvalidInputError("The image is empty: give e.g. ubuntu:22.04 or HOST:5000/team/img:tag.")
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    if client is not None:
        registry_host = registry_host or client.host
        if username is None and client.transport.auth.credentials is not None:
            username = client.transport.auth.credentials.username
            password = client.transport.auth.credentials.password
    host, rest = _split_host(raw)
    auth = (username, password or "", registry_host) if (username and registry_host) else None
    if host is not None:
        mine = registry_host is not None and host.lower() == registry_host.lower()
        parse_reference(rest, None)  # one-line error for a malformed name
        return JobImage(raw, mine, auth if mine else None)
    ref = parse_reference(raw, None)
    if client is not None and registry_host:
        try:
            found = client.manifest_digest(ref.repository, ref.reference) is not None
        except PaiError:
            found = False  # registry down or refusing: keep the public name, the job says why later
        if found:
            return JobImage(f"{registry_host}/{raw}", True, auth)
    return JobImage(raw, False, None)


def job_image_from_profile(image: str, profile: Any) -> JobImage:
    """``job_image`` with the registry the faces use for ``%pai_image_push``: the profile's,
    else ``PAI_REGISTRY`` (so an image pushed there resolves the same way in a job).

    No registry configured (or ``profile`` None before any login): the image as written.
    """
    try:
        client = RegistryClient.from_profile(profile if profile is not None else _NO_PROFILE, workers=1)
    except InvalidInputError:
        return job_image(image)
    with client:
        return job_image(image, client=client)


class _NoProfile:
    """Stands for "no profile" without from_profile loading the current one."""

    registry_url = registry_user = registry_password = None


_NO_PROFILE = _NoProfile()
