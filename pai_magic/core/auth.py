"""Logging in and out: a URL plus a password or a pasted token becomes a saved, checked
profile, and :func:`logout` ends it on the cluster as well as here.

The faces (``pai-magic login/logout``, ``%pai_login``/``%pai_logout``, the sidebar, the
panel) all call these functions, so the rules live in one place: the password is sent once
and never stored; an OIDC cluster is told apart through ``GET /info`` before any password
is asked for; a pasted token is checked with the cluster before it is saved; the profile
records how its token was obtained (``token_source``), because that decides whether a
logout may revoke it on the cluster.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from pai_magic.core.client import PaiClient
from pai_magic.core.deadline import request_timeout, say_seconds
from pai_magic.core.errors import (
    AuthError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiError,
    PaiTimeoutError,
    RateLimitedError,
    RedirectError,
    ServerError,
    UnreachableError,
)
from pai_magic.core.models import ClusterInfo, TokenStatus
from pai_magic.core.profiles import (
    TOKEN_FROM_PASSWORD,
    TOKEN_PASTED,
    Profile,
    forget_token,
    list_profiles,
    load_profile,
    normalize_registry_url,
    normalize_url,
    profile_from_env,
    save_profile,
)

#: A logout waits at most this long for the cluster (less if the request timeout is shorter):
#: the person is leaving, and a cluster that is down must not hold them up.
LOGOUT_SECONDS = 10.0
PORTAL_HINT = "the web portal's Profile -> tokens page can revoke it"


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
    prof.token_source = TOKEN_FROM_PASSWORD
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
    prof.token_source = TOKEN_PASTED
    if save:
        save_profile(prof, activate=activate)
    return prof, status


# ---- logging out ---------------------------------------------------------------------------

#: What happened on the cluster (``LogoutResult.cluster``).
REVOKED = "revoked"          # the cluster revoked the token
KEPT = "kept"                # not asked: a pasted token stays valid (scripts may share it)
ALREADY_INVALID = "invalid"  # the cluster no longer accepted it (expired, revoked before)
REFUSED = "refused"          # the cluster answered but would not revoke it (e.g. an application token)
UNREACHABLE = "unreachable"  # no usable answer (down, timeout, 5xx): it may still be valid
NO_TOKEN = "none"            # the profile held no token: nothing to do


@dataclass(frozen=True)
class LogoutResult:
    """What a logout did, for every face to show as is: ``message`` is the one line to print.

    Never holds the token. ``forgotten`` says the token is gone from the profile file;
    ``cluster`` is one of the outcome names above.
    """

    profile: str
    url: str
    user: str
    forgotten: bool
    cluster: str
    message: str

    @property
    def revoked(self) -> bool:
        return self.cluster == REVOKED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _revoke_on_cluster(prof: Profile, seconds: float) -> tuple[str, str]:
    """``DELETE authn/basic/logout`` with the token itself: the rest-server revokes exactly the
    bearer token (and refuses application tokens, 403). Returns (outcome, what to say).

    Never raises: whatever the cluster does, the caller still forgets the token here. The
    call is bounded by ``seconds`` and retried at most once (revoking is idempotent: a second
    try after a lost answer sees 401, reported as already invalid, which is then true). The
    token goes in the Authorization header only, never in a URL that a log could show.
    """
    try:
        with PaiClient(prof, timeout=(min(5.0, seconds), seconds), retries=1, deadline=seconds) as client:
            client.http.request("DELETE", "authn/basic/logout", what="logout")
    except AuthError:
        return ALREADY_INVALID, "the cluster had already dropped the token (expired or revoked before)"
    except ForbiddenError:
        return REFUSED, ("the cluster keeps the token, as it does not let an application token revoke "
                         f"itself ({PORTAL_HINT})")
    except NotFoundError:
        return REFUSED, f"the cluster has no password logout (an OIDC cluster?), so the token stays valid ({PORTAL_HINT})"
    except PaiTimeoutError:
        return UNREACHABLE, (f"the cluster did not answer within {say_seconds(seconds)} s, so the token may "
                             "still be valid there")
    except (UnreachableError, ServerError, RateLimitedError, RedirectError) as exc:
        why = ("could not be reached" if isinstance(exc, UnreachableError) else
               "is rate limiting this client" if isinstance(exc, RateLimitedError) else
               "redirects elsewhere" if isinstance(exc, RedirectError) else
               (f"failed ({exc.code})" if exc.code else "failed"))
        return UNREACHABLE, f"the cluster {why}, so the token may still be valid there"
    except PaiError as exc:
        label = exc.code or (f"HTTP {exc.status}" if exc.status else type(exc).__name__)
        return REFUSED, f"the cluster refused to revoke the token ({label}), so it may stay valid ({PORTAL_HINT})"
    return REVOKED, "the cluster revoked the token"


def logout(profile_name: str | None = None, *, revoke: bool = False, timeout: float | None = None) -> LogoutResult:
    """Log out of the profile's cluster: revoke the token there when that is right, then forget it here.

    A token from a password login is this session's own browser token: it is revoked with
    the rest-server's basic logout. A pasted token (an application token, a portal token)
    may be shared with scripts and CI, so it is only forgotten here unless ``revoke`` asks
    for more; so is a token of a profile written before profiles recorded where their
    token came from. Nothing on the cluster's side (down, slow, the token already invalid,
    a refusal) stops the local part; the result's one-line ``message`` says what happened.

    The environment's profile (``PAI_URL``/``PAI_TOKEN``) cannot be forgotten by us: without
    ``revoke`` that is bad input with what to do; with it, the token is revoked on the cluster.
    """
    from_env = not (profile_name or os.environ.get("PAI_PROFILE", "").strip()) and profile_from_env() is not None
    prof = load_profile(profile_name)
    who = f"{prof.url} as {prof.user}" if prof.user else prof.url
    where = "PAI_TOKEN" if from_env else f"profile {prof.name!r}"
    if not prof.token:
        return LogoutResult(prof.name, prof.url, prof.user, False, NO_TOKEN,
                            f"Not logged in to {prof.url} ({where} holds no token): nothing to do.")
    if from_env and not revoke:
        raise InvalidInputError("The token comes from PAI_TOKEN in the environment, not from a saved profile: "
                                "unset PAI_TOKEN (add --revoke to also revoke it on the cluster), "
                                "or name a saved profile with --profile NAME.")
    seconds = min(LOGOUT_SECONDS, float(timeout) if timeout else request_timeout())
    if revoke or prof.token_source == TOKEN_FROM_PASSWORD:
        outcome, said = _revoke_on_cluster(prof, seconds)
    else:
        outcome, said = KEPT, ("the pasted token stays valid on the cluster, as scripts may share it "
                               "(--revoke at logout, or the web portal's Profile -> tokens page, revokes it)")
    if from_env:
        forgotten, tail = False, "unset PAI_TOKEN to stop using it here"
    else:
        forgotten = forget_token(prof.name, prof.token)
        tail = (f"the token is forgotten here ({where})" if forgotten
                else f"{where} already holds another token (a newer login), left as it is")
    message = f"Logged out of {who}: {said}; {tail}."
    return LogoutResult(prof.name, prof.url, prof.user, forgotten, outcome, message)
