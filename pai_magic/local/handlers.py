"""Tornado handlers: parse the request, call one LocalBackend method, write JSON.

Every route of the rest-server that the project uses lives under ``/rest-server/api/v2``
(the cluster URL plus the prefix its nginx adds); log contents live under
``/log-manager/<host>/api/v1/logs/...`` like a cluster's log-manager links. Unknown paths
answer 404 NoApiError, as the rest-server's catch-all does.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable
from urllib.parse import parse_qs

import tornado.http1connection
import tornado.ioloop
import tornado.web

from pai_magic.local.backend import ApiError, Caller, LocalBackend
from pai_magic.local.runner import is_disk_full

log = logging.getLogger("pai_magic.local")

PREFIX = "/rest-server/api/v2"
SEG = r"([^/]+)"


#: the rest-server's body limit: body-parser's default of 100 kB for JSON, forms and text/*
MAX_BODY_BYTES = 100 * 1024
#: tornado's per-request cap while a BaseHandler reads a body (see BaseHandler.prepare)
UNCAPPED_BODY_BYTES = 1 << 62


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Reads the body in chunks up to MAX_BODY_BYTES and does every piece of real work
    (authentication, parsing, validation, sqlite, serialisation, password hashing) on the
    backend's executor, so one heavy request never stalls the event loop for the others."""

    backend: LocalBackend

    def initialize(self, backend: LocalBackend) -> None:
        self.backend = backend
        self._chunks: list[bytes] = []
        self._size = 0

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def check_xsrf_cookie(self) -> None:  # a REST API with bearer tokens, like the rest-server
        return

    def prepare(self) -> None:
        # This handler enforces the body limit itself, with the rest-server's JSON 413. The
        # server's own cap (tornado's max_body_size) answers a bare 400 instead, and for a
        # chunked body it judges each chunk by the size its header DECLARES, before a byte
        # reaches data_received: lift it for this request so the 413 below always comes first.
        # Nothing more is read for that: tornado reads at most one piece (its chunk_size) per
        # data_received, and stops reading once this handler has answered.
        conn = self.request.connection
        if isinstance(conn, tornado.http1connection.HTTP1Connection):
            conn.set_max_body_size(UNCAPPED_BODY_BYTES)
        length = self.request.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
            raise _too_large()

    def data_received(self, chunk: bytes) -> None:
        # a body without Content-Length (chunked) is refused as soon as it passes the limit,
        # as body-parser does: answering before the body ended makes tornado stop reading and
        # close the connection once the answer is out (a client still sending reads the 413 first)
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            error = _too_large()
            self.send_error(error.status, exc_info=(type(error), error, None))
            return
        self._chunks.append(chunk)

    def raw_body(self) -> bytes:
        return b"".join(self._chunks)

    # -- helpers ---------------------------------------------------------------------------
    async def run(self, fn: Callable[[], Any], executor: Any = None) -> Any:
        """``fn()`` on the backend's executor (off the event loop)."""
        return await tornado.ioloop.IOLoop.current().run_in_executor(executor or self.backend.executor, fn)

    async def reply(self, fn: Callable[[], Any], status: int = 200, executor: Any = None) -> None:
        """Compute ``fn()`` and its JSON text off the loop, then send it."""
        text = await self.run(lambda: json.dumps(fn(), separators=(",", ":")), executor)
        self.set_status(status)
        self.finish(text)

    def caller(self) -> Caller:
        return self.backend.authenticate(self.request.headers.get("Authorization"))

    def body(self) -> Any:
        raw = self.raw_body()
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except RecursionError:
            raise ApiError(400, "InvalidParametersError", "the request body nests too deep to be read") from None
        except ValueError:
            raise ApiError(400, "InvalidParametersError", "the request body is not valid JSON") from None
        if not isinstance(value, dict):  # every JSON body of the API is an object (Joi's message)
            raise ApiError(400, "InvalidParametersError", '"value" must be an object')
        return value

    def query(self) -> dict[str, str]:
        return {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()}

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        full = disk_full_message(exc, self.backend.data_dir)
        if isinstance(exc, tornado.web.HTTPError) and exc.status_code == 405:
            # a method this route lacks: the rest-server has no route for it either
            exc = ApiError(404, "NoApiError", f"API {self.request.path} is not found.")
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            body = {"code": exc.code, "message": exc.message}
        elif full:
            self.set_status(507)
            body = {"code": "InsufficientStorageError", "message": full}
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            body = {"code": "InvalidParametersError", "message": exc.log_message or self._reason}
        else:
            body = {"code": "UnknownError", "message": "Internal error of the embedded backend; see its log."}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return
        if disk_full_message(value, self.backend.data_dir):
            log.warning("embedded backend: %s %s: the data disk is full (%s)", self.request.method,
                        self.request.path, value)
            return
        super().log_exception(typ, value, tb)


def _too_large() -> ApiError:
    return ApiError(413, "PayloadTooLargeError",
                    f"request entity too large: the limit is {MAX_BODY_BYTES // 1024} kB, as on the rest-server")


def disk_full_message(exc: BaseException | None, data_dir: Any) -> str:
    """A one-line message when ``exc`` is the data disk being full (sqlite or a file write), else ""."""
    if not is_disk_full(exc):
        return ""
    return f"the embedded backend's data disk is full ({data_dir}): free some space there and try again"


class InfoHandler(BaseHandler):
    def get(self) -> None:
        self.send({"name": "PAI RESTful API", "version": "v1.8.1", "launcherType": "k8s", "authnMethod": "basic"})

    post = put = delete = get


class LoginHandler(BaseHandler):
    async def post(self) -> None:
        body = await self.run(self.body)
        username = body.get("username") if isinstance(body, dict) else None
        # one attempt at a time per user, each after the delay its recent failures earned:
        # guessing a password gets slower and slower, in parallel or not
        async with self.backend.logins.turn(username):
            delay = self.backend.logins.delay(username)
            if delay:
                await asyncio.sleep(delay)
            await self.reply(lambda: self.backend.login(body))


class LogoutHandler(BaseHandler):
    async def delete(self) -> None:
        header = self.request.headers.get("Authorization", "")
        await self.reply(lambda: self.backend.logout(self.caller(), header))


class TokensHandler(BaseHandler):
    async def get(self) -> None:
        await self.reply(lambda: self.backend.list_tokens(self.caller()))


class ApplicationTokenHandler(BaseHandler):
    async def post(self) -> None:
        await self.reply(lambda: self.backend.create_application_token(self.caller()))


class TokenCheckHandler(BaseHandler):
    async def get(self) -> None:
        await self.reply(lambda: self.caller().payload)


class TokenHandler(BaseHandler):
    async def delete(self, token: str) -> None:
        await self.reply(lambda: self.backend.revoke_token(self.caller(), token))


class UsersHandler(BaseHandler):
    async def get(self) -> None:
        await self.reply(lambda: (self.caller(), self.backend.all_users())[1])

    async def post(self) -> None:
        await self.reply(lambda: self.backend.create_user(self.caller(), self.body()), 201)

    async def put(self) -> None:
        await self.reply(lambda: self.backend.admin_update_user(self.caller(), self.body()), 201)


class UserMeHandler(BaseHandler):
    async def put(self) -> None:
        await self.reply(lambda: self.backend.update_me(self.caller(), self.body()), 201)

    async def get(self) -> None:
        # The rest-server routes only PUT to /users/me; a GET reaches GET /users/:username with
        # "me" as the name. Answering the caller here would hide that from the client.
        await self.reply(lambda: (self.caller(), self.backend.user_info("me"))[1])


class UserHandler(BaseHandler):
    async def get(self, username: str) -> None:
        await self.reply(lambda: (self.caller(), self.backend.user_info(username))[1])

    async def delete(self, username: str) -> None:
        await self.reply(lambda: self.backend.delete_user(self.caller(), username))


class VirtualClustersHandler(BaseHandler):
    async def get(self) -> None:
        await self.reply(lambda: (self.caller(), self.backend.virtual_clusters())[1])


class VirtualClusterHandler(BaseHandler):
    async def get(self, name: str) -> None:
        await self.reply(lambda: (self.caller(), self.backend.virtual_cluster(name))[1])


class StoragesHandler(BaseHandler):
    async def get(self) -> None:
        default = self.query().get("default") == "true"
        await self.reply(lambda: (self.caller(), self.backend.storages(default))[1])


class StorageHandler(BaseHandler):
    async def get(self, name: str) -> None:
        await self.reply(lambda: (self.caller(), self.backend.storage(name))[1])


class JobsHandler(BaseHandler):
    async def get(self) -> None:
        query = self.query()
        await self.reply(lambda: (self.caller(), self.backend.list_jobs(query))[1])

    async def post(self) -> None:
        def submit() -> Any:
            caller = self.caller()
            return self.backend.submit(caller, self.raw_body().decode("utf-8", "replace"))

        # submits (YAML parsing, validation) have their own threads: a flood of them waits there
        # instead of in front of everyone's reads
        await self.reply(submit, 202, self.backend.submit_executor)


class JobHandler(BaseHandler):
    async def get(self, framework: str, attempt: str | None = None) -> None:
        await self.reply(lambda: (self.caller(), self.backend.job(framework, attempt))[1])


class ExecutionTypeHandler(BaseHandler):
    async def put(self, framework: str) -> None:
        await self.reply(lambda: self.backend.stop(self.caller(), framework, self.body()), 202)


class ConfigHandler(BaseHandler):
    async def get(self, framework: str) -> None:
        text = await self.run(lambda: (self.caller(), self.backend.config(framework))[1])
        # the rest-server labels it text/yaml but sends the loaded object as JSON text
        self.set_header("Content-Type", "text/yaml; charset=utf-8")
        self.finish(text)


class SshInfoHandler(BaseHandler):
    async def get(self, framework: str) -> None:
        await self.run(self.caller)
        raise ApiError(404, "NoJobSshInfoError", f"SSH info of job {framework} is not found.")


class EventsHandler(BaseHandler):
    async def get(self, framework: str) -> None:
        kind = self.query().get("type")
        await self.reply(lambda: (self.caller(), self.backend.events(framework, kind))[1])


class TaskHandler(BaseHandler):
    async def get(self, framework: str, attempt: str, role: str, index: str) -> None:
        await self.reply(lambda: (self.caller(), self.backend.task(framework, attempt, role, index))[1])


class TaskLogsHandler(BaseHandler):
    async def get(self, framework: str, attempt: str, role: str, index: str, task_attempt: str) -> None:
        tail = self.query().get("tail-mode")
        await self.reply(lambda: (self.caller(), self.backend.log_locations(framework, attempt, role, index,
                                                                            task_attempt, tail))[1])


class LogContentHandler(BaseHandler):
    """A log-manager link: self-authorizing through its signed ``token`` query value."""

    async def get(self, _host: str, name: str) -> None:
        query, ranged = self.query(), self.request.headers.get("Range")
        status, data, headers = await self.run(lambda: self.backend.log_content(name, query, ranged))
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Accept-Ranges", "bytes")
        for key, value in headers.items():
            self.set_header(key, value)
        self.finish(data)


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise ApiError(404, "NoApiError", f"API {self.request.path} is not found.")


def routes(backend: LocalBackend) -> list[tuple[str, type, dict[str, Any]]]:
    kw = {"backend": backend}
    job = f"{PREFIX}/jobs/{SEG}"
    return [
        (f"{PREFIX}/info", InfoHandler, kw),
        (f"{PREFIX}/authn/basic/login", LoginHandler, kw),
        (f"{PREFIX}/authn/basic/logout", LogoutHandler, kw),
        (f"{PREFIX}/tokens/?", TokensHandler, kw),
        (f"{PREFIX}/tokens/application", ApplicationTokenHandler, kw),
        (f"{PREFIX}/tokens/check", TokenCheckHandler, kw),
        (f"{PREFIX}/tokens/{SEG}", TokenHandler, kw),
        (f"{PREFIX}/users/?", UsersHandler, kw),
        (f"{PREFIX}/users/me/?", UserMeHandler, kw),
        (f"{PREFIX}/users/{SEG}/?", UserHandler, kw),
        (f"{PREFIX}/virtual-clusters/?", VirtualClustersHandler, kw),
        (f"{PREFIX}/virtual-clusters/{SEG}/?", VirtualClusterHandler, kw),
        (f"{PREFIX}/storages/?", StoragesHandler, kw),
        (f"{PREFIX}/storages/{SEG}/?", StorageHandler, kw),
        (f"{PREFIX}/jobs/?", JobsHandler, kw),
        (f"{job}/?", JobHandler, kw),
        (f"{job}/attempts/{SEG}/?", JobHandler, kw),
        (f"{job}/attempts/{SEG}/taskRoles/{SEG}/taskIndex/{SEG}/attempts/?", TaskHandler, kw),
        (f"{job}/attempts/{SEG}/taskRoles/{SEG}/taskIndex/{SEG}/attempts/{SEG}/logs/?", TaskLogsHandler, kw),
        (f"{job}/executionType/?", ExecutionTypeHandler, kw),
        (f"{job}/config/?", ConfigHandler, kw),
        (f"{job}/ssh/?", SshInfoHandler, kw),
        (f"{job}/events/?", EventsHandler, kw),
        (r"/log-manager/([^/]+)/api/v1/logs/user-([a-z]+)", LogContentHandler, kw),
        (r".*", NotFoundHandler, kw),
    ]


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without query strings: log links carry a signature there."""
    status = handler.get_status()
    level = logging.WARNING if status >= 500 else logging.DEBUG
    log.log(level, "%s %s %s %.1fms", status, handler.request.method, handler.request.path,
            1000.0 * handler.request.request_time())


def make_app(backend: LocalBackend) -> tornado.web.Application:
    return tornado.web.Application(routes(backend), log_function=log_request, compress_response=False)
