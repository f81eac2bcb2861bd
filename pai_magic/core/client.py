"""PaiClient: the OpenPAI REST API v2 (v1.x clusters and the embedded backend) as Python calls.

It is deliberately thin over :mod:`pai_magic.core.http`: one method per endpoint, returning
:mod:`pai_magic.core.models` objects, understanding what differs between cluster versions
(the bare-array job list before v1.2, ``tokens/check`` from v1.6, config bodies that are
JSON although labelled YAML). Policies that span calls (never submitting twice, waiting,
watching many jobs, following logs) live in :mod:`pai_magic.core.jobs`.
"""
from __future__ import annotations

import base64
import json
import re
import time
from typing import Any, Iterable, Iterator
from urllib.parse import quote, urljoin

import yaml

from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiError,
)
from pai_magic.core.http import CONFLICT_HINT, DEFAULT_TIMEOUT, LOGIN_HINT, PaiHttp, json_of, origin
from pai_magic.core.models import (
    ClusterInfo,
    JobDetail,
    JobPage,
    JobSummary,
    LogChunk,
    TokenStatus,
)
from pai_magic.core.profiles import Profile

JOB_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")   # OpenPAI user (and virtual cluster) names
DEFAULT_ORDER = "submissionTime,DESC"
LOG_STREAMS = ("stdout", "stderr", "all")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"v1.8.1"`` -> ``(1, 8, 1)``; None when the cluster did not say."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def token_claims(token: str) -> dict[str, Any]:
    """The (unverified) JWT payload: who the token is for, whether it is an application token.

    Only used to fill in the user name of a pasted token and to explain 403s; the cluster is
    the one that decides whether the token is valid.
    """
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return data if isinstance(data, dict) else {}
    except (IndexError, ValueError, TypeError):
        return {}


def parse_job_ref(text: str) -> tuple[str | None, str]:
    """``NAME`` or ``USER~NAME`` (as the portal and the REST URLs write it) -> ``(user or None,
    name)``: the one check of a job reference for every face (magics, CLI, server)."""
    raw = (text or "").strip()
    owner, sep, job = raw.partition("~")
    user: str | None = owner if sep else None
    if not sep:
        job = owner
    if not job or not JOB_NAME_RE.match(job) or (user is not None and not USER_NAME_RE.match(user)):
        raise InvalidInputError(f"{text!r} is not a job name: names use letters, digits, '_' and '-' "
                                "(give USER~NAME for another user's job).")
    return user, job


def check_list_filter(value: str | None, field: str) -> str | None:
    """A job list's ``user`` or ``vc`` filter as typed (blank: none) -> the name, or an
    ``InvalidInputError`` on ``field`` saying what a name may hold."""
    text = (value or "").strip()
    if not text:
        return None
    if not USER_NAME_RE.match(text):
        what, example = ("virtual cluster name", "default") if field == "vc" else ("user name", "alice")
        raise InvalidInputError(f"{value!r} is not a {what}: use letters, digits, '_', '.' and '-', "
                                f"e.g. {example}.", field=field)
    return text


def split_job_name(name: str, default_user: str | None) -> tuple[str, str]:
    """``"alice~train"`` or ``"train"`` (+ the profile user) -> ``("alice", "train")``."""
    owner, job = parse_job_ref(name)
    user = owner or default_user or ""
    if not user:
        raise InvalidInputError(f"Whose job is {job!r}? Give USER~{job} or log in with a user name.")
    return user, job


def protocol_name(protocol: dict[str, Any] | str) -> tuple[dict[str, Any] | None, str, str]:
    """``(parsed dict or None, job name, YAML text to post)`` from a dict or YAML/JSON text."""
    from pai_magic.core.protocol.yamlio import dump_protocol, parse_protocol  # parsed as the server parses

    if isinstance(protocol, dict):
        job = protocol
        text = dump_protocol(job)
    elif isinstance(protocol, str):
        text = protocol
        job = parse_protocol(text)
        if not isinstance(job, dict):
            raise InvalidInputError("The job must be a YAML mapping with protocolVersion, name, taskRoles ...")
    else:
        raise InvalidInputError("A job is a protocol dict or its YAML text.")
    name = str(job.get("name") or "").strip()
    if not name or not JOB_NAME_RE.match(name):
        raise InvalidInputError(f"The job needs a `name` of letters, digits, '_' and '-' (got {name!r}).")
    return job, name, text


class PaiClient:
    """One cluster, one user, one HTTP session."""

    def __init__(self, profile: Profile, *, timeout: tuple[float, float] | float | None = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.3, http: PaiHttp | None = None,
                 deadline: float | None = None) -> None:
        if not profile.url:
            raise InvalidInputError("The profile has no cluster URL: run `pai-magic login URL`.")
        self.profile = profile
        self.http = http or PaiHttp(profile.rest_base, profile.token or None, timeout=timeout,
                                    retries=retries, backoff=backoff, deadline=deadline)
        self._info: ClusterInfo | None = None

    def __repr__(self) -> str:
        return f"PaiClient(url={self.profile.url!r}, user={self.profile.user!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "PaiClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def user(self) -> str:
        return self.profile.user

    # ----- cluster and login -------------------------------------------------------------

    def info(self, *, refresh: bool = False) -> ClusterInfo:
        """``GET /info`` (no token): version and authn method, cached per client."""
        if self._info is None or refresh:
            data = self.http.get_json("info", auth=False)
            if not isinstance(data, dict) or "version" not in data:
                raise PaiError(f"{self.profile.url} does not look like an OpenPAI cluster (no version in /info): "
                               "check the URL.")
            self._info = ClusterInfo.from_api(data)
        return self._info

    @property
    def version(self) -> tuple[int, ...] | None:
        return parse_version(self.info().version)

    def _at_least(self, *wanted: int) -> bool:
        """True when the cluster is at least ``wanted`` (an unknown version counts as new)."""
        ver = self.version
        return ver is None or ver[: len(wanted)] >= wanted

    def login(self, user: str, password: str, *, expiration: int | None = None) -> str:
        """Basic login: the password is sent once; only the token is kept (in this client)."""
        if not user:
            raise InvalidInputError("Login needs a user name: give --user NAME.")
        if not password:
            raise InvalidInputError("Login needs a password (from stdin or an environment variable).")
        info = self.info()
        if not info.has_basic_login:
            raise AuthError("This cluster uses OIDC: paste a token from the web portal (Profile -> tokens) "
                            "with `pai-magic login URL --token-stdin` / %pai_login URL --token.")
        body: dict[str, Any] = {"username": user, "password": password}
        if expiration:
            body["expiration"] = int(expiration)
        try:
            resp = self.http.request("POST", "authn/basic/login", json_body=body, auth=False)
        except (InvalidInputError, AuthError, NotFoundError) as exc:
            if isinstance(exc, NotFoundError) and not exc.code:
                raise  # no OpenPAI answer at all: the URL is wrong, say that instead
            # the cluster's code (InvalidParametersError, 401) stays on the error, not in the words
            raise AuthError(f"Login refused for {user!r} at {self.profile.url}: wrong user name or password; "
                            "try again.", code=exc.code) from None
        data = json_of(resp)
        token = (data or {}).get("token") if isinstance(data, dict) else None
        if not token:
            raise PaiError("The cluster accepted the login but sent no token: check the cluster URL.")
        self.http.token = token
        self.profile.token = token
        self.profile.user = str(data.get("user") or user)
        return str(token)

    def use_token(self, token: str, user: str | None = None) -> None:
        """Adopt a pasted token (e.g. an application token from the web portal)."""
        token = (token or "").strip()
        if not token:
            raise InvalidInputError("The token is empty: paste it from the web portal (Profile -> tokens).")
        if not token.isascii() or any(ch.isspace() for ch in token):
            # It goes into an HTTP header: anything else is a paste accident, not a token.
            raise InvalidInputError("That is not a token (it has spaces or non-ASCII characters): "
                                    "copy it again from the web portal (Profile -> tokens).")
        self.http.token = token
        self.profile.token = token
        claims = token_claims(token)
        self.profile.user = user or str(claims.get("username") or self.profile.user or "")

    def create_application_token(self) -> str:
        """``POST /tokens/application``: a token that never expires, for job calls only.

        It cannot change the profile (403 on ``users/me``); it is what scripts and CI keep.
        """
        data = json_of(self.http.request("POST", "tokens/application"))
        token = data.get("token") if isinstance(data, dict) else None
        if not token:
            raise PaiError("The cluster created no application token: check its version (v1.x).")
        return str(token)

    def check_token(self) -> TokenStatus:
        """Is the token accepted? ``tokens/check`` on v1.6+, else a cheap authenticated call.

        Raises AuthError (with the login hint) when refused; returns the status otherwise.
        """
        if not self.http.token:
            raise AuthError(f"No token in profile {self.profile.name!r}: {LOGIN_HINT}.")
        claims = token_claims(self.http.token)
        app = bool(claims.get("application"))
        exp = claims.get("exp") if isinstance(claims.get("exp"), int) else None
        user = str(claims.get("username") or self.user or "") or None
        if self._at_least(1, 6):
            try:
                data = self.http.get_json("tokens/check")
                if isinstance(data, dict):
                    user = str(data.get("username") or data.get("user") or user or "") or None
                    app = bool(data.get("application", app))
                return TokenStatus(valid=True, user=user, application=app, expires_at=exp,
                                   checked_with="tokens/check")
            except NotFoundError:
                pass  # a cluster without the endpoint: fall back below
        if not user:
            raise AuthError(f"Cannot tell whose token this is: {LOGIN_HINT} with --user.")
        self.http.request("GET", f"users/{quote(user, safe='')}", what=f"user {user}")
        return TokenStatus(valid=True, user=user, application=app, expires_at=exp, checked_with="users/<user>")

    # ----- jobs --------------------------------------------------------------------------

    def _fw(self, name: str, user: str | None = None) -> tuple[str, str, str]:
        u, job = split_job_name(name, user or self.user)
        return u, job, f"jobs/{quote(u, safe='')}~{quote(job, safe='')}"

    def get_job(self, name: str, user: str | None = None) -> JobDetail:
        """``GET /jobs/<user>~<job>``."""
        u, job, path = self._fw(name, user)
        data = self.http.get_json(path, what=f"Job {u}~{job}")
        detail = JobDetail.from_api(data)
        detail.name = detail.name or job
        detail.user = detail.user or u
        return detail

    def job_exists(self, name: str, user: str | None = None) -> bool:
        try:
            self.get_job(name, user)
            return True
        except NotFoundError:
            return False

    def list_jobs(self, username: str | None = None, state: str | None = None, vc: str | None = None,
                  keyword: str | None = None, offset: int = 0, limit: int | None = None,
                  order: str = DEFAULT_ORDER) -> JobPage:
        """One page of ``GET /jobs`` with filters (v1.2+), or the whole bare array of older clusters.

        An older cluster answers a bare array and ignores filters other than ``username``;
        then the filters and the paging are applied here so callers see one behaviour.
        """
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInputError("offset and limit must be >= 0.")
        params: dict[str, Any] = {"withTotalCount": "true", "order": order, "offset": int(offset)}
        if username:
            params["username"] = username
        if state:
            params["state"] = state.upper()
        if vc:
            params["vc"] = vc
        if keyword:
            params["keyword"] = keyword
        if limit is not None:
            params["limit"] = int(limit)
        data = self.http.get_json("jobs", params=params)
        if isinstance(data, dict) and "data" in data:
            items = [JobSummary.from_api(d) for d in data.get("data") or []]
            total = data.get("totalCount")
            return JobPage(items=items, total=int(total) if total is not None else None,
                           offset=offset, limit=limit)
        if isinstance(data, list):
            rows = [JobSummary.from_api(d) for d in data]
            rows = [r for r in rows if (not username or r.user == username)
                    and (not state or r.state.upper() == state.upper())
                    and (not vc or r.virtual_cluster == vc)
                    and (not keyword or keyword.lower() in f"{r.user} {r.name} {r.virtual_cluster}".lower())]
            rows = _sort_rows(rows, order)
            end = None if limit is None else offset + limit
            return JobPage(items=rows[offset:end], total=len(rows), offset=offset, limit=limit)
        raise PaiError("The cluster's job list has an unknown shape: check the cluster URL and version.")

    def iter_jobs(self, *, page_size: int = 500, **filters: Any) -> Iterator[JobSummary]:
        """Every job matching ``filters``, page by page, each job once.

        New submissions shift DESC pages while paging; duplicates are dropped by full name.
        """
        if page_size <= 0:
            raise InvalidInputError("page_size must be > 0.")
        seen: set[str] = set()
        offset = 0
        while True:
            page = self.list_jobs(offset=offset, limit=page_size, **filters)
            for item in page.items:
                if item.full_name not in seen:
                    seen.add(item.full_name)
                    yield item
            offset += len(page.items)
            if not page.items or len(page.items) < page_size:
                return
            if page.total is not None and offset >= page.total:
                return

    def submit(self, protocol: dict[str, Any] | str) -> str:
        """``POST /jobs`` (``text/yaml``) once; returns the job name.

        This is the raw call: it is not retried. Use :func:`pai_magic.core.jobs.submit_job`,
        which resolves doubtful failures without ever submitting twice.
        """
        _job, name, text = protocol_name(protocol)
        try:
            self.http.request("POST", "jobs", data=text.encode("utf-8"),
                              headers={"Content-Type": "text/yaml; charset=utf-8"})
        except ConflictError as exc:
            raise ConflictError(f"Job name {name!r} is already used: {CONFLICT_HINT}.", code=exc.code) from None
        except InvalidInputError as exc:
            detail = exc.details[0] if exc.details else str(exc)
            raise InvalidInputError(f"The cluster refused job {name!r} ({exc.code or 'invalid'}): "
                                    f"{detail.rstrip('.')}; fix the job and submit again.",
                                    code=exc.code, status=exc.status, details=exc.details) from None
        return name

    def stop(self, name: str, user: str | None = None) -> None:
        """``PUT executionType STOP`` (idempotent: stopping a stopped job is harmless)."""
        u, job, path = self._fw(name, user)
        self.http.request("PUT", f"{path}/executionType", json_body={"value": "STOP"}, what=f"Job {u}~{job}")

    def job_config(self, name: str, user: str | None = None) -> dict[str, Any]:
        """The submitted protocol (secrets masked). Labelled YAML, may be JSON text: YAML reads both."""
        u, job, path = self._fw(name, user)
        resp = self.http.request("GET", f"{path}/config", what=f"Config of job {u}~{job}",
                                 headers={"Accept": "text/yaml, application/json"})
        try:
            data = yaml.safe_load(resp.text)
        except yaml.YAMLError:
            raise PaiError(f"The config of job {u}~{job} is neither YAML nor JSON: check the cluster.") from None
        if not isinstance(data, dict):
            raise PaiError(f"The config of job {u}~{job} is not a mapping: check the cluster.")
        return data

    def job_events(self, name: str, user: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
        u, job, path = self._fw(name, user)
        params = {"type": event_type} if event_type else None
        data = self.http.get_json(f"{path}/events", params=params, what=f"Job {u}~{job}")
        if isinstance(data, dict):
            return list(data.get("data") or [])
        return list(data or [])

    # ----- logs --------------------------------------------------------------------------

    def task_log_locations(self, name: str, role: str | None = None, index: int = 0, *,
                           job_attempt: int | None = None, task_attempt: int | None = None,
                           user: str | None = None, tail: bool = False,
                           detail: JobDetail | None = None) -> dict[str, str]:
        """``{stdout|stderr|all: uri}`` of one task attempt (v1.4+).

        Without explicit attempts, the job's current attempt and the task's last attempt are
        read from the job detail. NotFoundError until the task has started.
        """
        u, job, path = self._fw(name, user)
        if role is None or job_attempt is None or task_attempt is None:
            detail = detail or self.get_job(name, user)
            task = detail.task(role, index)
            role = task.role
            job_attempt = detail.attempt_id if job_attempt is None else job_attempt
            task_attempt = task.attempt_id if task_attempt is None else task_attempt
        url = (f"{path}/attempts/{int(job_attempt)}/taskRoles/{quote(role, safe='')}"
               f"/taskIndex/{int(index)}/attempts/{int(task_attempt)}/logs")
        params = {"tail-mode": "true"} if tail else None
        data = self.http.get_json(url, params=params, what=f"Log of task {role}/{index} of job {u}~{job}")
        out: dict[str, str] = {}
        for loc in (data or {}).get("locations") or []:
            if isinstance(loc, dict) and loc.get("name") and loc.get("uri"):
                out[str(loc["name"])] = str(loc["uri"])
        return out

    def read_log_uri(self, uri: str, offset: int = 0, *, stream: str = "stdout") -> LogChunk:
        """Text of a log URI from byte ``offset`` (a ``Range`` request; sliced here if ignored).

        A file now shorter than ``offset`` was rotated: the chunk then holds the new file from
        its first byte, with ``restarted`` set (the lines written between the last read and
        the rotation are only in the rotated file).
        """
        url = urljoin(self.profile.url + "/", uri)
        headers = {"Accept": "text/plain, */*"}
        if offset > 0:
            headers["Range"] = f"bytes={int(offset)}-"
        resp = self.http.request("GET", url, headers=headers, auth=origin(url) == origin(self.profile.url),
                                 ok_statuses=(416,), what=f"The {stream} log")
        if resp.status_code == 416:
            size = _content_range_size(resp.headers.get("Content-Range"))
            if size is not None and size < offset and offset > 0:
                # The file is now shorter than what was read: the log-manager rotated it
                # (its ``current`` restarts empty). Start over at the top of the new file.
                chunk = self.read_log_uri(uri, 0, stream=stream)
                chunk.restarted = True
                return chunk
            return LogChunk(text="", offset=offset, next_offset=offset, stream=stream)  # nothing new yet
        body = resp.content
        restarted = False
        if resp.status_code == 206:
            start = _content_range_start(resp.headers.get("Content-Range")) or offset
            new = body[max(0, offset - start):]
        elif offset <= len(body):
            new = body[offset:]
        else:  # a server without ranges sent a file shorter than what was read: rotated
            new, offset, restarted = body, 0, True
        new = new[:_complete_utf8(new)]  # a character cut by the range waits for the next read
        return LogChunk(text=new.decode("utf-8", errors="replace"), offset=offset,
                        next_offset=offset + len(new), stream=stream, restarted=restarted)

    def task_log_text(self, name: str, role: str | None = None, index: int = 0, *, stream: str = "stdout",
                      offset: int = 0, job_attempt: int | None = None, task_attempt: int | None = None,
                      user: str | None = None, tail: bool = False, detail: JobDetail | None = None) -> LogChunk:
        """A task's ``stdout`` / ``stderr`` / ``all`` log from byte ``offset`` (for follow)."""
        if stream not in LOG_STREAMS:
            raise InvalidInputError(f"Log stream {stream!r} is unknown: use one of {', '.join(LOG_STREAMS)}.")
        locs = self.task_log_locations(name, role, index, job_attempt=job_attempt, task_attempt=task_attempt,
                                       user=user, tail=tail, detail=detail)
        uri = locs.get(stream) or (locs.get("all") if stream == "stdout" else None)
        if not uri:
            raise NotFoundError(f"The cluster has no {stream} log for this task (it has: "
                                f"{', '.join(sorted(locs)) or 'none'}).")
        return self.read_log_uri(uri, offset, stream=stream)

    # ----- users, storages, virtual clusters --------------------------------------------

    def get_user(self, name: str | None = None) -> dict[str, Any]:
        """``GET /users/<name>``, with the job SSH private key removed before anyone sees it."""
        who = name or self.user
        if not who:
            raise InvalidInputError(f"Which user? Log in with a user name first ({LOGIN_HINT}).")
        try:
            data = self.http.get_json(f"users/{quote(who, safe='')}", what=f"User {who}")
        except InvalidInputError as exc:
            if exc.code != "NoUserError":  # a cluster says "no such user" with 400, not 404
                raise
            raise NotFoundError(f"User {who} is not found on {self.profile.url}: check the user name.",
                                code=exc.code) from None
        if not isinstance(data, dict):
            raise PaiError(f"The cluster sent an unexpected answer for user {who}.")
        ext = data.get("extension")
        if isinstance(ext, dict) and isinstance(ext.get("jobSSH"), dict):
            ext["jobSSH"] = {k: v for k, v in ext["jobSSH"].items() if "private" not in k.lower()}
        return data

    def ssh_keys(self) -> list[dict[str, Any]]:
        """The profile's SSH public keys (``extension.sshKeys``: ``{title, value, time}``)."""
        ext = self.get_user().get("extension") or {}
        return [dict(k) for k in ext.get("sshKeys") or [] if isinstance(k, dict)]

    def update_ssh_keys(self, add: Iterable[tuple[str, str]] = (), *, replace: list[dict[str, Any]] | None = None,
                        remove_titles: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Read, change, write ALL profile SSH keys (the server replaces the whole list).

        ``add`` holds ``(title, public_key)`` pairs; a key already present (same key material)
        is not added twice. Returns the list now stored.
        """
        keys = [dict(k) for k in replace] if replace is not None else self.ssh_keys()
        drop = set(remove_titles)
        keys = [k for k in keys if k.get("title") not in drop]
        have = {_key_material(str(k.get("value", ""))) for k in keys}
        now_ms = int(time.time() * 1000)
        for title, value in add:
            value = (value or "").strip()
            if not value or len(value.split()) < 2:
                raise InvalidInputError(f"SSH key {title!r} is not an OpenSSH public key line (ssh-ed25519 AAAA...).")
            if _key_material(value) in have:
                continue
            keys.append({"title": title, "value": value, "time": now_ms})
            have.add(_key_material(value))
        body = {"data": {"username": self.user, "extension": {"sshKeys": keys}}, "patch": True}
        try:
            self.http.send_json("PUT", "users/me", body, what=f"User {self.user}")
        except ForbiddenError:
            kind = "an application token" if token_claims(self.http.token or "").get("application") else "this token"
            raise ForbiddenError(f"The cluster refused to change the profile with {kind} (application tokens cannot "
                                 f"change the profile): {LOGIN_HINT} with your password, then try again.") from None
        return keys

    def storages(self, *, default_only: bool = False) -> list[dict[str, Any]]:
        """``GET /storages``: ``[{name, share, volumeName, default}]``."""
        params = {"default": "true"} if default_only else None
        data = self.http.get_json("storages", params=params)
        if isinstance(data, dict):
            return list(data.get("storages") or [])
        return list(data or [])

    def storage(self, name: str) -> dict[str, Any]:
        """``GET /storages/<name>``: adds ``type``, ``data`` (NFS ``{server, path}``), ``readOnly``."""
        return dict(self.http.get_json(f"storages/{quote(name, safe='')}", what=f"Storage {name}") or {})

    def virtual_clusters(self) -> dict[str, Any]:
        """``GET /virtual-clusters``: ``{vc: {capacity, usedCapacity, resourcesUsed, resourcesTotal ...}}``."""
        data = self.http.get_json("virtual-clusters")
        return dict(data or {})


def _key_material(line: str) -> str:
    parts = line.split()
    return parts[1] if len(parts) >= 2 else line.strip()


def _complete_utf8(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence (at most 3 bytes cut)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # continuation byte: keep looking for the lead byte
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
        return len(data) - back if need > back else len(data)
    return len(data)


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _content_range_size(header: str | None) -> int | None:
    """The complete length in ``bytes */1234`` (416) or ``bytes 0-9/1234``; None if unknown (``*``)."""
    match = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", (header or "").strip())
    return int(match.group(1)) if match else None


_ORDER_FIELDS = {
    "jobname": lambda r: r.name, "submissiontime": lambda r: r.submission_time or 0,
    "username": lambda r: r.user, "vc": lambda r: r.virtual_cluster or "", "retries": lambda r: r.retries,
    "totalgpunumber": lambda r: r.gpus, "state": lambda r: r.state,
    "completiontime": lambda r: r.completed_time or 0,
}


def _sort_rows(rows: list[JobSummary], order: str) -> list[JobSummary]:
    field_name, _, direction = (order or DEFAULT_ORDER).partition(",")
    key = _ORDER_FIELDS.get(field_name.strip().lower())
    if key is None:
        return rows
    return sorted(rows, key=key, reverse=direction.strip().upper() != "ASC")


class ClientForProfile:
    """One PaiClient for whichever profile a face finds current at each call.

    Faces re-read the profile file on every action (a CLI login or another kernel may have
    changed it); the client, with its connection pool, is kept while the profile's name, URL,
    user and token stay the same, and replaced (the old one closed) when they change.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._client: PaiClient | None = None
        self._key: tuple[Any, ...] | None = None

    def get(self, profile: Any) -> PaiClient:
        key = (profile.name, profile.url, profile.user, profile.token)
        with self._lock:
            if self._client is None or self._key != key:
                old, self._client, self._key = self._client, PaiClient(profile), key
                if old is not None:
                    old.close()
            return self._client

    def close(self) -> None:
        with self._lock:
            old, self._client, self._key = self._client, None, None
        if old is not None:
            old.close()
