"""HTTP handlers of ``/pai-magic/api/...``: parse, call ONE backend method, answer JSON.

Every answer is JSON. Errors are ``{"error": "<one line>", "field": <the form field at fault
or null>}`` with a real status: the
PaiError's own ``status`` (400 bad input, 401 login needed, 404 no such job, 409 name used,
502 cluster unreachable ...), 400 for a malformed request, 404 for an unknown route under
the prefix, 500 (with the detail only in the server log) for a bug. Request bodies may hold a
password or a token: they are never logged or echoed.
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Callable

import tornado.http1connection
import tornado.web
from jupyter_server.base.handlers import APIHandler

from pai_magic.core.errors import InvalidInputError, PaiError, one_line
from pai_magic.core.client import check_list_filter, parse_job_ref
from pai_magic.core.models import check_job_state

# "job" for the logged-in user's job, "user~job" for anyone's (the way OpenPAI URLs name jobs).
TASK_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:/(\d+))?$")
LOG_STREAMS = ("stdout", "stderr", "all")
MAX_LIMIT = 1000


#: the largest request body this API reads (or less, when the server's max_body_size is lower):
#: far above any job protocol a cluster accepts (100 kB), far below what a server buffers (512 MB)
MAX_BODY_BYTES = 1024 * 1024
#: tornado's per-request cap while a PaiApiHandler reads a body (see PaiApiHandler.prepare)
UNCAPPED_BODY_BYTES = 1 << 62


@tornado.web.stream_request_body
class PaiApiHandler(APIHandler):
    """Shared plumbing: JSON bodies, the error shape, and running core calls off the loop.

    Bodies are streamed (``stream_request_body``) so that a body over the limit gets this
    API's JSON 413 as soon as it passes the limit, chunked or not: tornado's own check of
    ServerApp.max_body_size answers a bare 400 and resets the connection, and without
    streaming the whole body (up to 512 MB) would be buffered first. Jupyter's
    authentication (in ``prepare``) also comes before any of the body is read."""

    _chunks: list[bytes]
    _size = 0

    @property
    def backend(self):
        return self.settings["pai_magic_backend"]

    def body_limit(self) -> int:
        server_cap = getattr(self.settings.get("serverapp"), "max_body_size", None)
        return min(MAX_BODY_BYTES, server_cap) if isinstance(server_cap, int) and server_cap > 0 else MAX_BODY_BYTES

    async def prepare(self) -> None:  # type: ignore[override]
        self._chunks, self._size = [], 0
        # lifted first, so tornado never answers for this request (not even after a refusal
        # below): the limit is enforced here, and tornado stops reading once an answer is out
        conn = self.request.connection
        if isinstance(conn, tornado.http1connection.HTTP1Connection):
            conn.set_max_body_size(UNCAPPED_BODY_BYTES)
        await super().prepare()
        if self._finished:  # Jupyter answered already (a redirect to its login page)
            return
        length = self.request.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > self.body_limit():
            raise self._too_large()

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.body_limit():
            error = self._too_large()
            self.send_error(error.status_code, exc_info=(type(error), error, None))
            return
        self._chunks.append(chunk)

    def _too_large(self) -> tornado.web.HTTPError:
        return tornado.web.HTTPError(413, log_message=(
            f"The request body is over {self.body_limit() // 1024} kB, the most this API reads: "
            "send the JSON object the API describes (pai_magic/server/openapi.yaml), not files."))

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking backend call on the extension's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.settings["pai_magic_executor"], lambda: fn(*args, **kwargs))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))

    def json_body(self) -> dict[str, Any]:
        raw = b"".join(self._chunks)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:  # UnicodeDecodeError is one
            raise InvalidInputError("The request body is not JSON: send a JSON object.") from None
        if not isinstance(data, dict):
            raise InvalidInputError("The request body must be a JSON object, e.g. {\"name\": \"...\"}.")
        return data

    def query_int(self, name: str, default: int | None, low: int, high: int) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInputError(f"?{name}={raw!r} is not a whole number: give {low}..{high}.") from None
        if not low <= value <= high:
            raise InvalidInputError(f"?{name}={value} is out of range: give {low}..{high}.")
        return value

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Turn every failure into ``{"error": one line}`` (PaiError keeps its own status)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, PaiError):
            # the form field the message is about (the core's validation names it), so the
            # sidebar shows the line next to that field; null when it is about no one field
            field = getattr(exc, "field", None)
            body = {"error": str(exc), "field": field if isinstance(field, str) and field else None}
            if exc.code:
                body["code"] = exc.code
            if exc.details:
                body["details"] = list(exc.details)
        elif isinstance(exc, tornado.web.HTTPError):
            if status_code in (401, 403):
                text = "Not authorized by the Jupyter server: reload the page or log in to Jupyter again."
            elif status_code == 405:
                text = f"{self.request.method} is not allowed here: see pai_magic/server/openapi.yaml."
            else:
                text = exc.log_message or self._reason or f"HTTP {status_code}"
            body = {"error": one_line(text % exc.args if exc.args and exc.log_message else text), "field": None}
        else:
            body = {"error": "Internal error in the pai_magic server extension: see the Jupyter server log.",
                    "field": None}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def _handle_request_exception(self, e: BaseException) -> None:  # noqa: D401 (tornado hook)
        """Answer a PaiError with its own status, logged at info (it is the user's, not a bug)."""
        if isinstance(e, PaiError):
            self.log.info("pai_magic: %s %s -> %s %s", self.request.method,
                          self.request.path, e.status, type(e).__name__)
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


def check_job_name(name: str) -> str:
    parse_job_ref(name)
    return name


class StatusHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.call(self.backend.status))


class LoginHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        url = _text(body, "url")
        user = _text(body, "user")
        password = body.get("password")
        token = body.get("token")
        profile = _text(body, "profile") or None
        for key, value in (("password", password), ("token", token)):
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"`{key}` must be a string.")
        if not url:
            raise InvalidInputError("Give the cluster URL, e.g. {\"url\": \"http://10.0.0.1\", ...}.")
        if not password and not token:
            raise InvalidInputError("Give a password (basic login) or a token (OIDC clusters, application tokens).")
        if password and token:
            raise InvalidInputError("Give either a password or a token, not both.")
        if password and not user:
            raise InvalidInputError("A password login needs the user name: add \"user\".")
        self.reply(await self.call(self.backend.login, url=url, user=user, password=password or None,
                                   token=token or None, profile=profile))


class LocalHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        self.json_body()  # a malformed body is still an error, even though nothing is read
        self.reply(await self.call(self.backend.start_local))


class JobsHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        state = check_job_state(self.get_query_argument("state", ""))
        limit = self.query_int("limit", 20, 1, MAX_LIMIT)
        offset = self.query_int("offset", 0, 0, 10**9) or 0
        keyword = (self.get_query_argument("keyword", "") or "").strip() or None
        if keyword is not None and len(keyword) > 200:
            raise InvalidInputError("The search text is too long: give at most 200 characters of a job name.", field="keyword")
        # ?user= absent: the logged-in user's jobs; "*": everyone's; a name: that user's
        user_arg = (self.get_query_argument("user", "") or "").strip()
        if user_arg != "*":
            check_list_filter(user_arg, "user")
        user: str | None = None if user_arg == "*" else user_arg
        vc = check_list_filter(self.get_query_argument("vc", ""), "vc")
        self.reply(await self.call(self.backend.list_jobs, state=state, limit=limit, offset=offset,
                                   keyword=keyword, user=user, vc=vc))

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        request_id = body.pop("requestId", None)
        if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 200):
            raise InvalidInputError("`requestId` must be a non-empty string of at most 200 characters.")
        kinds = [k for k in ("spec", "yaml", "protocol") if k in body]
        if len(kinds) != 1:
            raise InvalidInputError(
                "Send exactly one of `spec` (image, commands ...), `yaml` (a protocol document) "
                "or `protocol` (its JSON).")
        unknown = sorted(set(body) - {"spec", "yaml", "protocol"})
        if unknown:
            raise InvalidInputError(f"Unknown field(s) {', '.join(unknown)}: send `spec`, `yaml` or `protocol`.")
        kind = kinds[0]
        payload = body[kind]
        if kind == "yaml" and not isinstance(payload, str):
            raise InvalidInputError("`yaml` must be the protocol document as a string.")
        if kind in ("spec", "protocol") and not isinstance(payload, dict):
            raise InvalidInputError(f"`{kind}` must be a JSON object.")
        ledger = self.settings["pai_magic_ledger"]
        result, duplicate = await self.call(
            ledger.run, request_id, lambda: self.backend.submit(kind, payload))
        self.reply(dict(result, duplicate=duplicate), status=200 if duplicate else 202)


class JobHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        self.reply(await self.call(self.backend.get_job, check_job_name(name)))


class StopHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        self.json_body()
        self.reply(await self.call(self.backend.stop, check_job_name(name)), status=202)


class LogsHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        check_job_name(name)
        role, index = None, 0
        task = (self.get_query_argument("task", "") or "").strip()
        if task:
            match = TASK_RE.match(task)
            if not match:
                raise InvalidInputError(f"?task={task!r} is not ROLE or ROLE/INDEX, e.g. ?task=worker/0.")
            role, index = match.group(1), int(match.group(2) or 0)
        stream = (self.get_query_argument("stream", "") or "stdout").strip().lower()
        if stream not in LOG_STREAMS:
            raise InvalidInputError(f"?stream={stream} is not one of {', '.join(LOG_STREAMS)}.")
        tail = self.query_int("tail", 65536, 1, 10 * 1024 * 1024)
        self.reply(await self.call(self.backend.logs, name, role=role, index=index, stream=stream, tail=tail))


class SshHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        self.reply(await self.call(self.backend.ssh_info, check_job_name(name)))


class ConfigHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        self.reply(await self.call(self.backend.job_config, check_job_name(name)))


class ProtocolHandler(PaiApiHandler):
    """The form as YAML (export) or a YAML document as the form (import); submits nothing."""

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        kinds = [k for k in ("spec", "yaml") if k in body]
        if len(kinds) != 1 or set(body) - {"spec", "yaml"}:
            raise InvalidInputError("Send exactly one of `spec` (the form) or `yaml` (a protocol document).")
        kind = kinds[0]
        payload = body[kind]
        if kind == "yaml" and (not isinstance(payload, str) or not payload.strip()):
            raise InvalidInputError("The YAML is empty: paste or load an OpenPAI protocol v2 document.", field="yaml")
        if kind == "spec" and not isinstance(payload, dict):
            raise InvalidInputError("`spec` must be a JSON object.")
        self.reply(await self.call(self.backend.protocol, kind, payload))


class ProfilesHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.call(self.backend.profiles))

    @tornado.web.authenticated
    async def post(self) -> None:
        name = _text(self.json_body(), "profile")
        if not name:
            raise InvalidInputError("Choose a profile to switch to: send {\"profile\": NAME}.", field="profile")
        self.reply(await self.call(self.backend.select_profile, name))


class LogoutHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        revoke = self.json_body().get("revoke", False)
        if not isinstance(revoke, bool):
            raise InvalidInputError("`revoke` must be true or false.", field="revoke")
        self.reply(await self.call(self.backend.logout, revoke=revoke))


class ImagesHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        pattern = (self.get_query_argument("filter", "") or "").strip() or None
        self.reply(await self.call(self.backend.images, pattern))


class ImageTagsHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        repository = (self.get_query_argument("repository", "") or "").strip()
        if not repository:
            raise InvalidInputError("Give the repository, e.g. ?repository=team/train.", field="repository")
        self.reply(await self.call(self.backend.image_tags, repository))


class StoragesHandler(PaiApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.call(self.backend.storages))


class NotFoundHandler(PaiApiHandler):
    """Unknown routes under the prefix answer JSON too, so the sidebar can show one line."""

    def _missing(self, *args: Any) -> None:
        self.reply({"error": f"No pai_magic endpoint {self.request.method} {self.request.path}: "
                             "see pai_magic/server/openapi.yaml.", "field": None}, status=404)

    get = post = put = delete = patch = _missing


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"`{key}` must be a string.")
    return value.strip()


def route_table(prefix: str) -> list[tuple[str, type]]:
    job = r"(?P<name>[^/]+)"
    return [
        (rf"{prefix}/status", StatusHandler),
        (rf"{prefix}/login", LoginHandler),
        (rf"{prefix}/local", LocalHandler),
        (rf"{prefix}/jobs", JobsHandler),
        (rf"{prefix}/jobs/{job}", JobHandler),
        (rf"{prefix}/jobs/{job}/stop", StopHandler),
        (rf"{prefix}/jobs/{job}/logs", LogsHandler),
        (rf"{prefix}/jobs/{job}/ssh", SshHandler),
        (rf"{prefix}/jobs/{job}/config", ConfigHandler),
        (rf"{prefix}/protocol", ProtocolHandler),
        (rf"{prefix}/profiles", ProfilesHandler),
        (rf"{prefix}/logout", LogoutHandler),
        (rf"{prefix}/images", ImagesHandler),
        (rf"{prefix}/images/tags", ImageTagsHandler),
        (rf"{prefix}/storages", StoragesHandler),
        (rf"{prefix}(?:/.*)?", NotFoundHandler),
    ]
