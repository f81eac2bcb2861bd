"""Registry authentication: challenges, Basic, Bearer tokens cached per scope.

Why a module of its own: the registry decides the scheme, not the client. ``GET /v2/`` (or any
call) answers 401 with ``WWW-Authenticate``; for ``Basic`` we send the credentials on every
call, for ``Bearer`` we fetch a token from the realm for the scope the call needs and keep one
token per scope until it expires (``expires_in`` defaults to 60 s). A 401 on a call that had a
token means "new challenge": we fetch again once, then give up with one line.

Credentials come from the caller (the profile) or from ``~/.docker/config.json`` ``auths``
(base64 ``user:password``). They live only in memory and in ``Authorization`` headers; the
``Credentials`` repr hides the password and nothing here logs a header.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from pai_magic.core.errors import AuthError, InvalidInputError

DEFAULT_TOKEN_LIFETIME = 60.0
# Renew a little before the registry would refuse the token.
TOKEN_EXPIRY_MARGIN = 5.0


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower-cased) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) into its challenges.

    Quoted values may contain commas (``scope="repository:a:pull,push"``) and escaped quotes,
    and one header may carry several challenges (``Basic realm="x", Bearer realm="y"``), so a
    split on commas is wrong; this is a small tokenizer instead.
    """
    text = header or ""
    i, n = 0, len(text)
    out: list[Challenge] = []
    current: Challenge | None = None

    def skip_ws(j: int) -> int:
        while j < n and text[j] in " \t":
            j += 1
        return j

    def read_token(j: int) -> tuple[str, int]:
        start = j
        while j < n and text[j] in _TOKEN_CHARS:
            j += 1
        return text[start:j], j

    while i < n:
        i = skip_ws(i)
        if i < n and text[i] == ",":
            i += 1
            continue
        word, j = read_token(i)
        if not word:
            i += 1  # stray character: skip it rather than loop forever
            continue
        k = skip_ws(j)
        if k < n and text[k] == "=" and current is not None:
            m = k
            while m < n and text[m] == "=":
                m += 1
            if skip_ws(m) >= n or text[skip_ws(m)] == ",":
                i = skip_ws(m)  # a token68 ("abc==") after the scheme: not a parameter
                continue
            # auth-param: name = token / quoted-string
            k = skip_ws(k + 1)
            if k < n and text[k] == '"':
                k += 1
                buf: list[str] = []
                while k < n and text[k] != '"':
                    if text[k] == "\\" and k + 1 < n:
                        k += 1
                    buf.append(text[k])
                    k += 1
                value = "".join(buf)
                k += 1  # closing quote
            else:
                value, k = read_token(k)
                # token68 padding ("abc==") or any non-token chars up to the next comma
                while k < n and text[k] not in ", \t":
                    value += text[k]
                    k += 1
            current.params[word.lower()] = value
            i = k
        else:
            # a new challenge (scheme) — possibly followed by a token68 we ignore
            current = Challenge(word.lower(), {})
            out.append(current)
            i = j
    return out


@dataclass(frozen=True)
class Credentials:
    """A registry user and password; the password never appears in a repr."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def docker_config_path() -> Path:
    """Where Docker keeps ``auths``: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base).expanduser() / "config.json"
    return Path.home() / ".docker" / "config.json"


def _auth_key_host(key: str) -> str:
    """``auths`` keys are ``host:port``, ``http://host:port`` or ``https://host/v1/``."""
    raw = key.strip()
    if "://" in raw:
        return urlsplit(raw).netloc.lower()
    return raw.split("/", 1)[0].lower()


def docker_config_credentials(registry_host: str, path: Path | None = None) -> Credentials | None:
    """Credentials for ``registry_host`` (``host:port``) from Docker's config file, if any.

    Only inline ``auth`` (base64) or ``username``/``password`` entries are read: credential
    helpers (``credsStore``) need a Docker install and would be an external program call.
    """
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON: fix it or remove the registry entry from it.") from exc
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = registry_host.lower()
    for key, entry in auths.items():
        if _auth_key_host(key) != wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInputError(
                    f"The auth entry for {registry_host} in {path} is not base64 user:password: log in again.") from exc
            if sep:
                return Credentials(user, password)
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(str(entry["username"]), str(entry["password"]))
    return None


@dataclass
class _Token:
    value: str
    expires_at: float


TokenFetcher = Callable[[Challenge, list[str], "Credentials | None"], tuple[str, float]]


class RegistryAuth:
    """Decides the ``Authorization`` header of each call and reacts to challenges.

    Thread-safe: the listing fans out over a pool, and every thread shares one token cache.
    ``fetch_token`` is injected by the transport (it owns the HTTP session and timeouts).
    """

    def __init__(self, credentials: Credentials | None, fetch_token: TokenFetcher) -> None:
        self.credentials = credentials
        self._fetch_token = fetch_token
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" / "bearer" once a challenge told us
        self._bearer: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self.token_requests = 0

    def __repr__(self) -> str:
        user = self.credentials.username if self.credentials else None
        return f"RegistryAuth(user={user!r}, scheme={self._scheme!r}, cached_tokens={len(self._tokens)})"

    @staticmethod
    def scope_key(scopes: Iterable[str]) -> str:
        return " ".join(sorted(set(s for s in scopes if s)))

    def header(self, scopes: Iterable[str]) -> str | None:
        """The header to send up front (None until a challenge says what is needed)."""
        scheme = self._scheme
        if scheme == "basic" and self.credentials:
            return self.credentials.basic_header()
        if scheme == "bearer":
            tok = self._tokens.get(self.scope_key(scopes))
            if tok and tok.expires_at > time.monotonic():
                return "Bearer " + tok.value
        return None

    def handle_challenge(self, www_authenticate: str | None, scopes: Iterable[str], sent: str | None) -> str:
        """Answer a 401: return the header to retry with, or raise ``AuthError``.

        The transport retries a call at most once after a challenge and raises
        :meth:`refused` on a second 401, so this only decides what the retry carries.
        ``sent`` is the header the refused call had: the same Basic credentials again would
        be pointless, a cached token that was refused is dropped and fetched anew.
        """
        scopes = list(scopes)
        challenges = parse_challenges(www_authenticate)
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.realm:
            wanted = set(scopes)
            if bearer.scope:
                wanted.update(bearer.scope.split(" "))
            key = self.scope_key(scopes)
            with self._lock:
                self._scheme = "bearer"
                cached = self._tokens.get(key)
                if cached is not None:
                    if sent != "Bearer " + cached.value and cached.expires_at > time.monotonic():
                        return "Bearer " + cached.value  # another thread refreshed it meanwhile
                    del self._tokens[key]
                self.token_requests += 1
                value, lifetime = self._fetch_token(bearer, sorted(wanted), self.credentials)
                expires = time.monotonic() + max(1.0, lifetime - TOKEN_EXPIRY_MARGIN)
                self._tokens[key] = _Token(value, expires)
                return "Bearer " + value
        if "basic" in by_scheme:
            self._scheme = "basic"
            if self.credentials is None:
                raise self.refused()
            header = self.credentials.basic_header()
            if sent == header:
                raise self.refused()
            return header
        raise AuthError("The registry refused the request (401) without a Basic or Bearer challenge: "
                        "check the registry URL in the profile.")

    def refused(self) -> AuthError:
        """The one-line error for a registry that keeps answering 401."""
        if self.credentials is None:
            return AuthError("The registry needs a login: set registry_user and registry_password in the "
                             "profile, or add the registry to the auths of ~/.docker/config.json.")
        return AuthError(f"The registry refused user {self.credentials.username!r} (401): check "
                         "registry_user / registry_password in the profile or the auths entry in "
                         "~/.docker/config.json.")
