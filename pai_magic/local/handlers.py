"""Tornado handlers: parse the request, call one LocalBackend method, write JSON.

Every route of the rest-server that the project uses lives under ``/rest-server/api/v2``
(the cluster URL plus the prefix its nginx adds); log contents live under
``/log-manager/<host>/api/v1/logs/...`` like a cluster's log-manager links. Unknown paths
answer 404 NoApiError, as the rest-server's catch-all does.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import tornado.web

from pai_magic.local.backend import ApiError, Caller, LocalBackend

log = logging.getLogger("pai_magic.local")

PREFIX = "/rest-server/api/v2"
SEG = r"([^/]+)"


class BaseHandler(tornado.web.RequestHandler):
    backend: LocalBackend

    def initialize(self, backend: LocalBackend) -> None:
        self.backend = backend

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def check_xsrf_cookie(self) -> None:  # a REST API with bearer tokens, like the rest-server
        return

    # -- helpers ---------------------------------------------------------------------------
    def caller(self) -> Caller:
        return self.backend.authenticate(self.request.headers.get("Authorization"))

    def body(self) -> Any:
        raw = self.request.body or b""
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "InvalidParametersError", "the request body is not valid JSON") from None

    def query(self) -> dict[str, str]:
        return {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()}

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            body = {"code": exc.code, "message": exc.message}
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            body = {"code": "InvalidParametersError", "message": exc.log_message or self._reason}
        else:
            body = {"code": "UnknownError", "message": "Internal error of the embedded backend; see its log."}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return
        super().log_exception(typ, value, tb)

    def _unsupported(self, *args: Any, **kwargs: Any) -> None:
        raise ApiError(404, "NoApiError", f"API {self.request.path} is not found.")

    get = post = put = delete = patch = _unsupported


class InfoHandler(BaseHandler):
    def _info(self) -> None:
        self.send({"name": "PAI RESTful API", "version": "v1.8.1", "launcherType": "k8s", "authnMethod": "basic"})

    get = post = put = delete = _info


class LoginHandler(BaseHandler):
    def post(self) -> None:
        self.send(self.backend.login(self.body()))


class LogoutHandler(BaseHandler):
    def delete(self) -> None:
        caller = self.caller()
        self.send(self.backend.logout(caller, self.request.headers.get("Authorization", "")))


class TokensHandler(BaseHandler):
    def get(self) -> None:
        self.send(self.backend.list_tokens(self.caller()))


class ApplicationTokenHandler(BaseHandler):
    def post(self) -> None:
        self.send(self.backend.create_application_token(self.caller()))


class TokenCheckHandler(BaseHandler):
    def get(self) -> None:
        self.send(self.caller().payload)


class TokenHandler(BaseHandler):
    def delete(self, token: str) -> None:
        self.send(self.backend.revoke_token(self.caller(), token))


class UsersHandler(BaseHandler):
    def get(self) -> None:
        self.caller()
        self.send(self.backend.all_users())

    def post(self) -> None:
        caller = self.caller()
        self.send(self.backend.create_user(caller, self.body()), 201)


class UserMeHandler(BaseHandler):
    def put(self) -> None:
        caller = self.caller()
        self.send(self.backend.update_me(caller, self.body()), 201)

    def get(self) -> None:
        # The rest-server routes only PUT to /users/me; a GET reaches GET /users/:username with
        # "me" as the name. Answering the caller here would hide that from the client.
        self.caller()
        self.send(self.backend.user_info("me"))


class UserHandler(BaseHandler):
    def get(self, username: str) -> None:
        self.caller()
        self.send(self.backend.user_info(username))


class VirtualClustersHandler(BaseHandler):
    def get(self) -> None:
        self.caller()
        self.send(self.backend.virtual_clusters())


class VirtualClusterHandler(BaseHandler):
    def get(self, name: str) -> None:
        self.caller()
        self.send(self.backend.virtual_cluster(name))


class StoragesHandler(BaseHandler):
    def get(self) -> None:
        self.caller()
        self.send(self.backend.storages(self.query().get("default") == "true"))


class StorageHandler(BaseHandler):
    def get(self, name: str) -> None:
        self.caller()
        self.send(self.backend.storage(name))


class JobsHandler(BaseHandler):
    def get(self) -> None:
        self.caller()
        self.send(self.backend.list_jobs(self.query()))

    def post(self) -> None:
        caller = self.caller()
        text = (self.request.body or b"").decode("utf-8", "replace")
        self.send(self.backend.submit(caller, text), 202)


class JobHandler(BaseHandler):
    def get(self, framework: str, attempt: str | None = None) -> None:
        self.caller()
        self.send(self.backend.job(framework, attempt))


class ExecutionTypeHandler(BaseHandler):
    def put(self, framework: str) -> None:
        caller = self.caller()
        self.send(self.backend.stop(caller, framework, self.body()), 202)


class ConfigHandler(BaseHandler):
    def get(self, framework: str) -> None:
        self.caller()
        text = self.backend.config(framework)
        # the rest-server labels it text/yaml but sends the loaded object as JSON text
        self.set_header("Content-Type", "text/yaml; charset=utf-8")
        self.finish(text)


class SshInfoHandler(BaseHandler):
    def get(self, framework: str) -> None:
        self.caller()
        raise ApiError(404, "NoJobSshInfoError", f"SSH info of job {framework} is not found.")


class EventsHandler(BaseHandler):
    def get(self, framework: str) -> None:
        self.caller()
        self.send(self.backend.events(framework, self.query().get("type")))


class TaskHandler(BaseHandler):
    def get(self, framework: str, attempt: str, role: str, index: str) -> None:
        self.caller()
        self.send(self.backend.task(framework, attempt, role, index))


class TaskLogsHandler(BaseHandler):
    def get(self, framework: str, attempt: str, role: str, index: str, task_attempt: str) -> None:
        self.caller()
        self.send(self.backend.log_locations(framework, attempt, role, index, task_attempt,
                                             self.query().get("tail-mode")))


class LogContentHandler(BaseHandler):
    """A log-manager link: self-authorizing through its signed ``token`` query value."""

    def get(self, _host: str, name: str) -> None:
        status, data, headers = self.backend.log_content(name, self.query(), self.request.headers.get("Range"))
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
