"""Logging in: turn a URL plus a password or a pasted token into a saved, checked profile.

The faces (``pai-magic login``, ``%pai_login``, the sidebar) all call these two functions,
so the rules live in one place: the password is sent once and never stored; an OIDC
cluster is told apart through ``GET /info`` before any password is asked for; a pasted
token is checked with the cluster before it is saved.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from pai_magic.core.client import PaiClient
from pai_magic.core.errors import AuthError, InvalidInputError
from pai_magic.core.models import ClusterInfo, TokenStatus
from pai_magic.core.profiles import Profile, list_profiles, normalize_registry_url, normalize_url, save_profile


def default_profile_name(url: str) -> str:
    """A readable profile name from the cluster URL: ``10.0.0.1`` or ``127.0.0.1-8080``.

    Re-logging into the same cluster then refreshes that profile instead of piling up copies.
    """
    parts = urlsplit(normalize_url(url))
    host = parts.hostname or "cluster"
    name = host if not parts.port else f"{host}-{parts.port}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _existing(url: str, name: str | None) -> Profile | None:
    """A stored profile to update: by name if given, else the one for this URL."""
    norm = normalize_url(url)
    for prof in list_profiles():
        if (name and prof.name == name) or (not name and prof.url == norm):
            return prof
    return None


def detect_cluster(url: str, *, timeout: float = 10.0) -> ClusterInfo:
    """``GET /info`` without a token: version and whether basic login exists."""
    with PaiClient(Profile(name="probe", url=url), timeout=(min(5.0, timeout), timeout)) as client:
        return client.info()


def _base_profile(url: str, name: str | None, virtual_cluster: str | None, registry_url: str | None) -> Profile:
    old = _existing(url, name)
    prof = Profile(name=name or (old.name if old else default_profile_name(url)), url=url)
    if old is not None:  # keep what the person set before (vc, registry, storage, key)
        prof.virtual_cluster = old.virtual_cluster
        prof.registry_url = old.registry_url
        prof.registry_user = old.registry_user
        prof.registry_password = old.registry_password
        prof.storage = old.storage
        prof.ssh_key = old.ssh_key
    if virtual_cluster:
        prof.virtual_cluster = virtual_cluster
    if registry_url:
        prof.registry_url = normalize_registry_url(registry_url)
    return prof


def login_with_password(url: str, user: str, password: str, *, profile_name: str | None = None,
                        virtual_cluster: str | None = None, registry_url: str | None = None,
                        expiration: int | None = None, save: bool = True, activate: bool = True) -> Profile:
    """Basic login; returns (and by default saves and activates) the profile holding the token."""
    prof = _base_profile(url, profile_name, virtual_cluster, registry_url)
    with PaiClient(prof) as client:
        client.login(user, password, expiration=expiration)
    if save:
        save_profile(prof, activate=activate)
    return prof


def login_with_token(url: str, token: str, *, user: str | None = None, profile_name: str | None = None,
                     virtual_cluster: str | None = None, registry_url: str | None = None,
                     save: bool = True, activate: bool = True) -> tuple[Profile, TokenStatus]:
    """Adopt a pasted token (OIDC clusters, application tokens) after the cluster accepted it."""
    if not (token or "").strip():
        raise InvalidInputError("The token is empty: paste it from the web portal (Profile -> tokens).")
    prof = _base_profile(url, profile_name, virtual_cluster, registry_url)
    with PaiClient(prof) as client:
        client.use_token(token.strip(), user)
        try:
            status = client.check_token()
        except AuthError:
            # the generic hint says "run login", but this IS the login: say what to fix instead
            raise AuthError("The cluster refused that token: copy it again from the web portal "
                            "(Profile -> tokens), or log in with a password.") from None
        if status.user and not prof.user:
            prof.user = status.user
    if not prof.user:
        raise InvalidInputError("Cannot tell whose token this is: give --user NAME.")
    if save:
        save_profile(prof, activate=activate)
    return prof, status
