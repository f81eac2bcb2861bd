"""The one HTTP layer under the OpenPAI client.

Why it exists: every call to a cluster needs the same four things, and getting any of them
wrong shows up as a hung kernel, a job submitted twice, or a token in a log:

- one ``requests.Session`` (connection reuse) and ONE deadline per call, retries included
  (:mod:`pai_magic.core.deadline`), stated in the message: "no answer from URL within 30 s";
- retries for idempotent methods only (GET/HEAD/OPTIONS, and PUT/DELETE, which this
  project only uses with full-replacement bodies: ``executionType STOP``, the whole ssh key
  list). POST is never retried after the request may have reached the server: a submit that
  failed doubtfully is resolved by :func:`pai_magic.core.jobs.submit_job` with a GET;
- every answer ``>= 400`` (OpenPAI ``{code, message}`` JSON, a proxy's HTML page, a bare 429
  text) turned into ONE :class:`~pai_magic.core.errors.PaiError` child whose one-line message
  says what to do next;
- a redirect to another origin (host, port or scheme: http -> https too) is an error naming
  the target, never followed: the answer would be another server's;
- the ``Authorization`` header and URL query strings (log URIs carry ``token=``) never appear
  in logs, reprs or error messages.

Errors raised after the request may have been received by the server carry the attribute
``request_sent = True`` (read timeouts, connections dropped mid-answer, 5xx), so a caller can
tell "surely not done" from "maybe done".
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from email.utils import parsedate_to_datetime
from html import unescape
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiError,
    PaiTimeoutError,
    RateLimitedError,
    RedirectError,
    ServerError,
    UnreachableError,
    one_line,
)
from pai_magic.core.deadline import ENV_VAR, Deadline, operation, request_timeout, say_seconds

log = logging.getLogger("pai_magic.http")

_SECRET_QUERY = re.compile(r"((?:token|access_token|password)=)[^&\s\"']+", re.I)


class _RedactSecretsFilter(logging.Filter):
    """urllib3 logs every URL at DEBUG, query included; log-manager URIs carry ``token=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SECRET_QUERY.sub(r"\1***", record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_SECRET_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactSecretsFilter())

DEFAULT_TIMEOUT: tuple[float, float] | None = None  # 5 s to connect, the rest of the deadline to answer
CONNECT_TIMEOUT = 5.0
MAX_RETRY_AFTER = 5.0  # a longer Retry-After is the caller's to honour (RateLimitedError.retry_after)
BACKOFF_MAX = 10.0
MAX_REDIRECTS = 5
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
LOGIN_HINT = "run `pai-magic login` / %pai_login"
NOT_FOUND_HINTS = {
    "NoJobError": "check the job name with `pai-magic jobs` (USER~NAME for another user's job)",
    "NoJobConfigError": "check the job name with `pai-magic jobs`",
    "NoTaskError": "check the task ROLE/INDEX with `pai-magic job NAME`",
    "NoTaskLogError": "the task has not started yet (or its log is gone): try again once it runs",
    "NoStorageError": "check the storage name; the cluster lists yours under /storages",
    "NoVirtualClusterError": "check the virtual cluster name; the cluster lists them under /virtual-clusters",
    "NoUserError": "check the user name",
}
CONFLICT_HINT = "OpenPAI never reuses job names, even of finished jobs: choose another name"


def redact_url(url: str) -> str:
    """``url`` without query or fragment (log-manager URIs carry ``token=...``) or user info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def make_session() -> requests.Session:
    """One pooled session WITHOUT urllib3 retries: :meth:`PaiHttp.request` retries itself,
    so that every retry and every ``Retry-After`` wait stays inside one deadline."""
    session = requests.Session()
    # read=False: urllib3 re-raises a read timeout as itself (requests' ReadTimeout) instead of
    # wrapping it in MaxRetryError, which requests would report as a ConnectionError
    adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=0, raise_on_status=False,
                                            raise_on_redirect=False),
                          pool_connections=4, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "pai_magic"
    return session


def _html_title(text: str) -> str | None:
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    if match:
        return one_line(unescape(match.group(1)), 120) or None
    match = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.I | re.S)
    if match:
        return one_line(unescape(re.sub(r"<[^>]+>", "", match.group(1))), 120) or None
    return None


def parse_error_body(resp: requests.Response) -> tuple[str | None, str, bool]:
    """``(code, message, is_openpai_json)`` from any error body: JSON, HTML or plain text."""
    text = resp.text or ""
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict) and ("code" in data or "message" in data):
        code = data.get("code")
        return (str(code) if code else None, str(data.get("message") or "").strip(), True)
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0] or {}
        return (first.get("code"), str(first.get("message") or ""), False)
    if "<html" in text[:500].lower() or "<!doctype" in text[:200].lower():
        return None, _html_title(text) or "an HTML page", False
    return None, one_line(text, 160), False


def error_from_response(resp: requests.Response, *, what: str | None = None) -> PaiError:
    """Map one HTTP error answer to the PaiError child a face can print as is.

    ``what`` names the thing asked for ("job alice~x") so 404s read naturally.
    """
    status = resp.status_code
    code, message, is_pai = parse_error_body(resp)
    url = redact_url(resp.url or "")
    host = origin(resp.url or "") if resp.url else "the cluster"
    msg = one_line(message)
    if status == 401:
        return AuthError(f"Token expired or refused by {host}: {LOGIN_HINT}.", code=code, status=401)
    if status == 403:
        text = msg or "the cluster refused this request"
        return ForbiddenError(f"Forbidden: {text.rstrip('.')}. Ask the cluster admin for access, "
                              f"or {LOGIN_HINT} as a user who has it.", code=code, status=403)
    if status == 404:
        if not is_pai:
            return NotFoundError(f"{url} answered 404 without an OpenPAI error ({msg or 'empty'}): "
                                 "check the cluster URL (is it an OpenPAI cluster of v1.x?).", code=code)
        text = msg.rstrip(".") or f"{what or 'It'} was not found"
        return NotFoundError(f"{text}: {NOT_FOUND_HINTS.get(code or '', 'check the name and try again')}.",
                             code=code)
    if status == 409:
        return ConflictError(f"{(msg or 'Name already used').rstrip('.')}: {CONFLICT_HINT}.", code=code)
    if status == 429:
        wait = _retry_after(resp)
        when = f"{wait:.0f} s" if wait is not None else "a minute"
        limited = RateLimitedError(f"{host} is rate limiting this client (HTTP 429): wait {when} and try again.",
                                   code=code)
        limited.retry_after = wait  # type: ignore[attr-defined]
        return limited
    if 400 <= status < 500:
        lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
        first = one_line(lines[0]) if lines else f"HTTP {status}"
        label = f"{code}: " if code else ""
        return InvalidInputError(f"The cluster refused the request ({label}{first.rstrip('.')}): fix it and try again.",
                                 code=code, status=status, details=lines)
    if is_pai:
        err: PaiError = ServerError(f"{host} failed (HTTP {status}{', ' + code if code else ''}): "
                                    f"{msg.rstrip('.') or 'no message'}; try again later or ask the cluster admin.",
                                    code=code, status=502)
    else:
        err = ServerError(f"{host} answered HTTP {status} with {msg or 'no body'} (a proxy or gateway, not "
                          "OpenPAI): check the cluster URL and that the cluster is up.", code=code, status=502)
    err.request_sent = True  # type: ignore[attr-defined]
    return err


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost reason behind requests' wrappers (MaxRetryError -> NewConnectionError ...)."""
    seen = 0
    cur: BaseException = exc
    while seen < 8:
        seen += 1
        nxt = getattr(cur, "reason", None)
        if isinstance(nxt, BaseException):
            cur = nxt
            continue
        if cur.args and isinstance(cur.args[0], BaseException):
            cur = cur.args[0]
            continue
        if cur.__context__ is not None and isinstance(cur.__context__, OSError) and cur is not cur.__context__:
            cur = cur.__context__
            continue
        break
    return cur


def _cause_text(exc: BaseException) -> str:
    root = _root_cause(exc)
    text = str(root)
    # urllib3 messages embed the connection object and sometimes the full URL: keep the cause
    text = re.sub(r"<[^>]+>:\s*", "", text)
    text = re.sub(r"https?://\S+", "<url>", text)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "timed out", "Connection reset by peer",
                   "Remote end closed connection without response", "certificate verify failed"):
        if marker.lower() in text.lower():
            return marker
    return one_line(f"{type(root).__name__}: {text}" if text else type(root).__name__, 160)


class PaiHttp:
    """One session to one REST base, with the token, the deadline, retries and error mapping.

    ``requests_sent`` counts every HTTP request sent (retries included), which lets a watcher
    prove its one-request-per-tick budget.

    ``timeout`` is the ``(connect, read)`` limit of ONE try (default: 5 s to connect, the rest
    of the deadline to answer); ``deadline`` the seconds one call may take in all, retries and
    ``Retry-After`` waits included (default: :func:`pai_magic.core.deadline.request_timeout`,
    read at each call). A call inside an :func:`~pai_magic.core.deadline.operation` also ends
    with that operation.
    """

    def __init__(self, base_url: str, token: str | None = None, *,
                 timeout: tuple[float, float] | float | None = None, retries: int = 3,
                 backoff: float = 0.3, session: requests.Session | None = None,
                 deadline: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self.deadline = deadline
        self.session = session or make_session()
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PaiHttp({self.base_url!r}, token={'set' if self._token else 'none'})"

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value or None

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def close(self) -> None:
        self.session.close()

    def deadline_seconds(self) -> float:
        """Seconds one call may take in all (the explicit value, else the configured default)."""
        return float(self.deadline) if self.deadline is not None else request_timeout()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, data: bytes | str | None = None,
                headers: Mapping[str, str] | None = None, auth: bool = True,
                timeout: tuple[float, float] | float | None = None, what: str | None = None,
                ok_statuses: tuple[int, ...] = ()) -> requests.Response:
        """Send one call; return the answer if ``< 400`` (or in ``ok_statuses``), else raise.

        Idempotent methods are retried on connection failures, read timeouts and
        429/502/503/504; any method is retried when the connection was never made. A
        redirect is followed only within the same origin (scheme, host, port) for GET/HEAD;
        anywhere else it is a :class:`RedirectError` naming the target.
        """
        method = method.upper()
        url = self.url(path)
        idempotent = method in IDEMPOTENT_METHODS
        with operation(self.deadline_seconds()) as deadline:
            tries = 0
            hops = 0
            while True:
                tries += 1
                resp = self._send_once(method, url, params=params, json_body=json_body, data=data,
                                       headers=headers, auth=auth, timeout=timeout, deadline=deadline,
                                       retry=tries <= self.retries and idempotent,
                                       retry_unsent=tries <= min(self.retries, 2))
                if resp is None:  # a failure worth another try: wait, then go on
                    self._pause(tries, None, deadline)
                    continue
                status = resp.status_code
                if 300 <= status < 400 and status not in ok_statuses:
                    url = self._redirect_target(resp, url, method, hops)
                    hops += 1
                    params = None  # the Location carries the query of the next request
                    continue
                if status in RETRY_STATUSES and idempotent and tries <= self.retries and status not in ok_statuses:
                    wait = _retry_after(resp)
                    if wait is None or wait <= MAX_RETRY_AFTER:
                        if self._pause(tries, wait, deadline, needed=wait or 0.0):
                            resp.close()
                            continue
                if status >= 400 and status not in ok_statuses:
                    raise error_from_response(resp, what=what)
                return resp

    def _send_once(self, method: str, url: str, *, params: Mapping[str, Any] | None, json_body: Any,
                   data: bytes | str | None, headers: Mapping[str, str] | None, auth: bool,
                   timeout: tuple[float, float] | float | None, deadline: Deadline,
                   retry: bool, retry_unsent: bool) -> requests.Response | None:
        """One try within ``deadline``: the answer, None to try again, or the clear error."""
        shown = redact_url(url)
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _no_answer(method, shown, deadline, sent=False)
        connect, read = _split_timeout(timeout if timeout is not None else self.timeout, remaining)
        hdrs: dict[str, str] = {"Accept": "application/json"}
        if headers:
            hdrs.update(headers)
        if auth and self._token and origin(url) == origin(self.base_url):
            hdrs["Authorization"] = f"Bearer {self._token}"
        with self._count_lock:
            self.requests_sent += 1
        log.debug("%s %s", method, shown)
        try:
            resp = self.session.request(method, url, params=params, json=json_body, data=data, headers=hdrs,
                                        timeout=(min(connect, remaining), min(read, remaining)),
                                        allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            if retry_unsent and deadline.remaining() > 0:
                return None
            if deadline.expired:
                raise _no_answer(method, shown, deadline, sent=False) from None
            raise UnreachableError(f"Cannot reach {shown}: connection timed out. Check the URL and "
                                   "that the cluster (or `pai-magic local`) is running.") from None
        except requests.exceptions.ReadTimeout:
            if retry and deadline.remaining() > 0.05:
                return None
            if deadline.expired or read >= remaining:
                raise _no_answer(method, shown, deadline, sent=True) from None
            raise _no_answer(method, shown, deadline, sent=True, within=read) from None
        except requests.exceptions.SSLError as exc:
            raise UnreachableError(f"TLS failed for {shown} ({_cause_text(exc)}): check https:// vs http:// "
                                   "in the cluster URL.") from None
        except requests.exceptions.ConnectionError as exc:
            sent = _maybe_sent(exc)
            if (retry if sent else retry_unsent) and deadline.remaining() > 0:
                return None
            cause = _cause_text(exc)
            err = UnreachableError(f"Cannot reach {shown}: {cause}. Check the URL and that the cluster "
                                   "(or `pai-magic local`) is running." if not sent else
                                   f"The connection to {shown} broke before the answer came ({cause}); "
                                   "try again.")
            err.request_sent = sent  # type: ignore[attr-defined]
            raise err from None
        except requests.exceptions.InvalidURL:
            raise InvalidInputError(f"{shown} is not a valid URL: fix the cluster URL in the profile.") from None
        except requests.exceptions.RequestException as exc:
            err = UnreachableError(f"Request to {shown} failed: {_cause_text(exc)}.")
            err.request_sent = True  # type: ignore[attr-defined]
            raise err from None
        log.debug("%s %s -> %s", method, shown, resp.status_code)
        return resp

    def _pause(self, tries: int, wait: float | None, deadline: Deadline, needed: float = 0.0) -> bool:
        """Sleep before try ``tries + 1`` (``Retry-After`` or exponential backoff), never past the
        deadline; False when the deadline leaves no room for the wait asked."""
        if wait is None:
            wait = 0.0 if tries <= 1 else min(BACKOFF_MAX, self.backoff * (2 ** (tries - 1)))
        remaining = deadline.remaining()
        if needed > remaining:
            return False
        time.sleep(min(wait, remaining))
        return True

    def _redirect_target(self, resp: requests.Response, url: str, method: str, hops: int) -> str:
        """The next URL for a redirect the client may follow, else the error that names it."""
        shown = redact_url(url)
        location = resp.headers.get("Location", "")
        resp.close()
        target = urljoin(url, location) if location else ""
        if target and origin(target) == origin(url) and method in ("GET", "HEAD") and hops < MAX_REDIRECTS:
            return target
        if not target:
            raise RedirectError(f"{shown} answered a redirect ({resp.status_code}) without a target: check the "
                                "cluster URL.")
        where = redact_url(target)
        if origin(target) == origin(url):
            raise RedirectError(f"{shown} redirects ({resp.status_code}) a {method} to {where}: "
                                f"{'too many redirects' if hops >= MAX_REDIRECTS else 'not followed for a ' + method}; "
                                "check the cluster URL.")
        raise RedirectError(f"{shown} redirects ({resp.status_code}) to another address, {where}: not followed "
                            f"(the token stays here). If that is the cluster, use {origin(target)} as the "
                            "cluster URL (e.g. https:// instead of http://).")

    def get_json(self, path: str, **kw: Any) -> Any:
        return json_of(self.request("GET", path, **kw))

    def send_json(self, method: str, path: str, body: Any, **kw: Any) -> Any:
        resp = self.request(method, path, json_body=body, **kw)
        return json_of(resp, allow_empty=True)


def json_of(resp: requests.Response, *, allow_empty: bool = False) -> Any:
    """The JSON of a success answer; a login page or proxy page says so in one line."""
    text = resp.text
    if allow_empty and not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        _code, msg, _ = parse_error_body(resp)
        raise ServerError(f"{redact_url(resp.url or '')} answered {resp.headers.get('Content-Type', 'text')} "
                          f"({msg or 'not JSON'}) instead of JSON: check the cluster URL "
                          "(a proxy or login page is in the way).") from None


def _split_timeout(timeout: tuple[float, float] | float | None, remaining: float) -> tuple[float, float]:
    """``(connect, read)`` of one try: the given ones, else 5 s to connect and the rest to answer."""
    if timeout is None:
        return CONNECT_TIMEOUT, remaining
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


def _retry_after(resp: requests.Response) -> float | None:
    """Seconds of a ``Retry-After`` header (a number or an HTTP date), None without one."""
    value = (resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _no_answer(method: str, shown: str, deadline: Deadline, *, sent: bool,
               within: float | None = None) -> PaiError:
    """The timeout error, saying the number of seconds the user was promised."""
    seconds = say_seconds(deadline.promised if within is None else within)
    if not sent:
        err: PaiError = PaiTimeoutError(f"No answer from {shown} within {seconds} s (no connection): check the URL "
                                        "and that the cluster is up, or allow more time with --request-timeout / "
                                        f"{ENV_VAR}.")
    else:
        landed = " (the request may still have been applied: check before repeating it)" \
            if method not in IDEMPOTENT_METHODS else ""
        err = PaiTimeoutError(f"No answer from {shown} within {seconds} s{landed}: the cluster is down or "
                              f"overloaded; try again later, or allow more time with --request-timeout / "
                              f"{ENV_VAR}.")
    err.request_sent = sent  # type: ignore[attr-defined]
    return err


def _maybe_sent(exc: BaseException) -> bool:
    """False only when the connection was never established (the request cannot have landed)."""
    from urllib3 import exceptions as u3

    never_sent = tuple(getattr(u3, n) for n in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
                       if hasattr(u3, n)) + (ConnectionRefusedError,)
    root = _root_cause(exc)
    if isinstance(root, never_sent):
        return False
    text = str(exc)
    return not ("NewConnectionError" in text or "Connection refused" in text
                or "Name or service not known" in text or "Failed to resolve" in text)
