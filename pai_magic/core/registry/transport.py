"""The registry's HTTP layer: one Session, timeouts, safe retries, auth, one-line errors.

Why separate from the OpenPAI http layer: the registry speaks another dialect
(``{"errors": [{code, message, detail}]}``, challenges on any call, Link paging, digests in
headers) and its listing fans out over a thread pool, which needs a cheaper request path than
``requests.Session.request`` (see :meth:`RegistryTransport.fast_get`).

Rules kept here: every call has a (connect, read) timeout; only GET and HEAD are retried
(urllib3 ``Retry``); plain HTTP only when the URL says ``http://`` (an ``https://`` URL on a
plain-HTTP registry fails with a hint, never a silent downgrade); no header, password or
token ever reaches a message or log.
"""
from __future__ import annotations

import http.client
import json
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pai_magic.core.errors import (
    AuthError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiError,
    PaiTimeoutError,
    RateLimitedError,
    ServerError,
    UnreachableError,
)
from pai_magic.core.registry.auth import Challenge, Credentials, RegistryAuth

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
RETRY_METHODS = frozenset({"GET", "HEAD"})
DELETE_DISABLED = "delete is disabled on this registry: its config needs storage.delete.enabled: true"


@dataclass
class Reply:
    """A finished answer: status, headers (case-insensitive mapping) and the body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ServerError(f"The registry answered {self.status} with a body that is not JSON "
                              f"(a proxy page?) for {_path_of(self.url)}: check the registry URL.") from exc


def _path_of(url: str) -> str:
    return urlsplit(url).path or "/"


def registry_errors(body: bytes) -> list[dict[str, Any]]:
    """The ``errors`` list of a registry error body, or [] for HTML / empty / other JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errs = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []


def error_for(status: int, body: bytes, what: str, content_type: str = "") -> PaiError:
    """Turn a failed answer into ONE error of the hierarchy with a one-line next step.

    ``what`` names the object of the call ("repository team/x", "the catalog") so the
    message can say which thing is missing; it never contains credentials.
    """
    errs = registry_errors(body)
    code = str(errs[0].get("code", "")) if errs else None
    message = " ".join(str(errs[0].get("message", "")).split()) if errs else ""
    if status == 401:
        return AuthError(f"The registry refused access to {what} (401): check registry_user / "
                         "registry_password in the profile.", code=code)
    if status == 403:
        return ForbiddenError(f"The registry forbids this on {what} (403): ask its admin for push/delete "
                              "rights.", code=code)
    if status == 405 or code == "UNSUPPORTED":
        if what.lower().startswith("delete"):
            return PaiError(f"{DELETE_DISABLED[0].upper()}{DELETE_DISABLED[1:]}.", code=code, status=405)
        return PaiError(f"The registry does not support this on {what} ({code or status}"
                        + (f": {message}" if message else "") + ").", code=code, status=405)
    if status == 404:
        if code == "NAME_UNKNOWN":
            return NotFoundError(f"{what.capitalize()} does not exist on the registry: list them with "
                                 "%pai_images / pai-magic images.", code=code)
        if code == "MANIFEST_UNKNOWN":
            return NotFoundError(f"{what.capitalize()} does not exist: list the tags with "
                                 "%pai_images --tags.", code=code)
        if code == "BLOB_UNKNOWN":
            return NotFoundError(f"A blob of {what} is missing on the registry: push the image again.", code=code)
        if not errs and b"<html" in body[:512].lower():
            return NotFoundError(f"{what.capitalize()}: the registry URL answered an HTML 404 page (a proxy or "
                                 "a web server, not a registry?): check the registry URL.", code=code)
        return NotFoundError(f"{what.capitalize()} was not found (404).", code=code)
    if status == 429:
        return RateLimitedError("The registry is rate limiting (429): wait a minute and retry.", code=code)
    if status == 400 or status == 413 or status == 416:
        detail = f": {message}" if message else ""
        return InvalidInputError(f"The registry rejected the request for {what} ({code or status}{detail}).",
                                 code=code)
    if status >= 500:
        if not errs:
            return ServerError(f"The registry (or a proxy in front of it) failed with {status} on {what}: "
                               "retry later or ask its admin.", code=code)
        return ServerError(f"The registry failed with {status} on {what} ({code}: {message}): retry later.",
                           code=code)
    return PaiError(f"The registry answered {status} on {what}"
                    + (f" ({code}: {message})" if errs else "") + ".", code=code, status=status)


class RegistryTransport:
    """Owns the Session, the auth state and the mapping of failures to errors."""

    def __init__(self, url: str, credentials: Credentials | None = None, *,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, pool_size: int = 16,
                 retries: int = 3) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInputError(
                f"Registry {url!r} needs an explicit scheme: http://HOST:PORT (plain HTTP) or https://HOST.")
        if parts.username or parts.password:
            raise InvalidInputError("Put registry credentials in registry_user / registry_password, "
                                    "not in the registry URL.")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc surprises; credentials are ours alone
        self._retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                            backoff_factor=0.2, status_forcelist=(502, 503, 504),
                            allowed_methods=RETRY_METHODS, raise_on_status=False,
                            respect_retry_after_header=True)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=self._retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._adapter = adapter
        self._raw = _ConnectionPool(parts.scheme, parts.netloc, timeout, pool_size)
        self.auth = RegistryAuth(credentials, self._fetch_token)
        self.request_count = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryTransport({self.url!r}, {self.auth!r})"

    def close(self) -> None:
        self.session.close()
        self._raw.close()

    def _count(self) -> None:
        with self._count_lock:
            self.request_count += 1

    def absolute(self, path_or_url: str) -> str:
        """Resolve a relative ``Link`` / ``Location`` against the registry URL, verbatim."""
        return urljoin(self.url + "/", path_or_url)

    # ------------------------------------------------------------------ token fetching
    def _fetch_token(self, challenge: Challenge, scopes: list[str], creds: Credentials | None) -> tuple[str, float]:
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params += [("scope", s) for s in scopes]
        headers = {"Authorization": creds.basic_header()} if creds else {}
        realm = challenge.realm or ""
        try:
            self._count()
            resp = self.session.get(realm, params=params, headers=headers, timeout=self.timeout)
        except requests.exceptions.Timeout as exc:
            raise PaiTimeoutError("The registry's token server did not answer in time: retry later.") from exc
        except requests.exceptions.RequestException as exc:
            raise UnreachableError(f"Cannot reach the registry's token server at {_host_of(realm)}: "
                                   "check the network or the registry's auth config.") from exc
        if resp.status_code in (401, 403):
            raise self.auth.refused()
        if resp.status_code >= 400:
            raise ServerError(f"The registry's token server answered {resp.status_code}: retry later.")
        try:
            data = resp.json()
        except ValueError as exc:
            raise ServerError("The registry's token server answered something that is not JSON.") from exc
        token = data.get("token") or data.get("access_token")
        if not token:
            raise ServerError("The registry's token server answered without a token.")
        try:
            lifetime = float(data.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60.0
        return str(token), lifetime

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path_or_url: str, *, scopes: Iterable[str] = (), what: str = "the registry",
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                data: Any = None, stream: bool = False, ok: Iterable[int] = ()) -> requests.Response:
        """One call with auth; statuses in ``ok`` (and every 2xx) are returned, others raise.

        A 401 is answered once through :class:`RegistryAuth` and the call sent again, so
        ``data`` must be resendable (bytes, never a generator); a second 401 raises.
        """
        scopes = list(scopes)
        url = self.absolute(path_or_url)
        ok = set(ok)
        sent = self.auth.header(scopes)
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            if sent:
                hdrs["Authorization"] = sent
            try:
                self._count()
                resp = self.session.request(method, url, params=params, headers=hdrs, data=data,
                                            stream=stream, timeout=self.timeout, allow_redirects=True)
            except requests.exceptions.SSLError as exc:
                raise UnreachableError(f"TLS failed with the registry {self.host}: if it is a plain-HTTP lab "
                                       f"registry, write its URL as http://{self.host}.") from exc
            except requests.exceptions.Timeout as exc:
                raise PaiTimeoutError(f"The registry {self.host} did not answer in time ({method} "
                                      f"{_path_of(url)}): retry, or check that it is not overloaded.") from exc
            except requests.exceptions.ConnectionError as exc:
                raise _connection_error(self.host, exc) from exc
            except requests.exceptions.RetryError as exc:
                raise ServerError(f"The registry {self.host} kept failing on {method} {_path_of(url)}: "
                                  "retry later.") from exc
            if resp.status_code == 401:
                resp.close()
                if attempt == 1:
                    break
                sent = self.auth.handle_challenge(resp.headers.get("WWW-Authenticate"), scopes, sent)
                continue
            if resp.status_code < 300 or resp.status_code in ok:
                return resp
            body = resp.content[:65536]
            resp.close()
            raise error_for(resp.status_code, body, what, resp.headers.get("Content-Type", ""))
        raise self.auth.refused()

    def fast_get(self, path: str, *, scopes: Iterable[str], what: str,
                 headers: Mapping[str, str] | None = None, ok: Iterable[int] = ()) -> Reply:
        """A small GET (listing, paging) on a pooled keep-alive ``http.client`` connection.

        Why not ``Session.get``: the tags fan-out is thousands of tiny GETs, and
        ``requests`` spends about 0.75 ms of CPU on each (``urllib3`` alone 0.3 ms, plain
        ``http.client`` 0.16 ms, measured on this machine kind), about what the registry
        needs to answer. On a small machine that CPU is taken from the registry, so the
        cheap path is what lets a pooled listing approach the registry's own ceiling.
        Same rules as :meth:`request`: timeouts, GET-only retries on stale connections and
        502/503/504 with backoff, the same auth and the same one-line errors; a redirect
        is handed to :meth:`request`.
        """
        scopes = list(scopes)
        url = self.absolute(path)
        if not url.startswith(self.url + "/"):
            resp = self.request("GET", url, scopes=scopes, what=what, headers=headers, ok=ok)
            return Reply(resp.status_code, resp.headers, resp.content, url)
        target = url[len(self.url):]
        ok = set(ok)
        sent = self.auth.header(scopes)
        for attempt in (0, 1):
            hdrs = {"Accept-Encoding": "identity", **(headers or {})}
            if sent:
                hdrs["Authorization"] = sent
            status, resp_headers, body = self._raw_get(target, hdrs, url)
            if status == 401:
                if attempt == 1:
                    break
                sent = self.auth.handle_challenge(resp_headers.get("WWW-Authenticate"), scopes, sent)
                continue
            if 300 <= status < 400 and resp_headers.get("Location"):
                resp = self.request("GET", url, scopes=scopes, what=what, headers=headers, ok=ok)
                return Reply(resp.status_code, resp.headers, resp.content, url)
            if status < 300 or status in ok:
                return Reply(status, resp_headers, body, url)
            raise error_for(status, body[:65536], what, resp_headers.get("Content-Type", ""))
        raise self.auth.refused()

    def _raw_get(self, target: str, headers: dict[str, str], url: str) -> tuple[int, Any, bytes]:
        """One GET with the transport's retry policy (idempotent, so retrying is safe)."""
        retries = self._retry.total or 0
        for attempt in range(retries + 1):
            conn: http.client.HTTPConnection | None = None
            try:
                self._count()
                conn = self._raw.get()
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except ssl.SSLError as exc:
                _close(conn)
                raise UnreachableError(f"TLS failed with the registry {self.host}: if it is a plain-HTTP lab "
                                       f"registry, write its URL as http://{self.host}.") from exc
            except (socket.timeout, TimeoutError) as exc:
                _close(conn)  # not retried: a registry too slow once is slow again, and waits add up
                raise PaiTimeoutError(f"The registry {self.host} did not answer in time (GET {_path_of(url)}): "
                                      "retry, or check that it is not overloaded.") from exc
            except (OSError, http.client.HTTPException) as exc:
                _close(conn)  # a stale keep-alive connection, a refused or reset one
                if attempt < retries:
                    time.sleep(0 if attempt == 0 else self._retry.backoff_factor * (2 ** attempt))
                    continue
                raise _connection_error(self.host, exc) from exc
            if resp.will_close:
                conn.close()
            else:
                self._raw.put(conn)
            if resp.status in (502, 503, 504) and attempt < retries:
                time.sleep(self._retry.backoff_factor * (2 ** attempt))
                continue
            return resp.status, resp.headers, body
        raise ServerError(f"The registry {self.host} kept failing on GET {_path_of(url)}: retry later.")


def _close(conn: http.client.HTTPConnection | None) -> None:
    if conn is not None:
        conn.close()


class _ConnectionPool:
    """Keep-alive ``http.client`` connections shared by the listing threads (LIFO, bounded)."""

    def __init__(self, scheme: str, host: str, timeout: tuple[float, float], maxsize: int) -> None:
        self.scheme = scheme
        self.host = host
        self.timeout = timeout
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue(maxsize)
        self._context = ssl.create_default_context() if scheme == "https" else None

    def get(self) -> http.client.HTTPConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        if self._context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, timeout=self.timeout[0], context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, timeout=self.timeout[0])
        conn.connect()  # connect timeout first, then the read timeout for every answer
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout[1])
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def put(self, conn: http.client.HTTPConnection) -> None:
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _host_of(url: str) -> str:
    return urlsplit(url).netloc or "?"


def _connection_error(host: str, exc: Exception) -> UnreachableError:
    text = str(exc)
    if "SSL" in text or "ssl" in text or "wrong version number" in text:
        return UnreachableError(f"TLS failed with the registry {host}: if it is a plain-HTTP lab registry, "
                                f"write its URL as http://{host}.")
    return UnreachableError(f"Cannot reach the registry at {host}: check its address (--registry, "
                            "PAI_REGISTRY or the profile's registry_url) and that the registry is running.")


def with_query(path: str, params: Mapping[str, Any]) -> str:
    """``path`` plus an encoded query (used for the first page; later pages come from Link)."""
    clean = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(clean)}" if clean else path
