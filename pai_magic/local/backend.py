"""What each REST call of the embedded backend does, independent of tornado.

The rules (status codes, error codes, messages, checks and their order) follow the real
rest-server, microsoft/pai ``src/rest-server/src`` v1.8: for example a submit is parsed and
validated first (400 InvalidProtocolError), then checked for a reused name (409
ConflictJobError, finished jobs included), then for the virtual cluster (403) and storages
(404 NoStorageError); a wrong password is 400 IncorrectPasswordError as on a cluster.
"""
from __future__ import annotations

import getpass
import json
import logging
import os
import re
import secrets as pysecrets
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pai_magic.core.paths import write_private
from pai_magic.local import segments, views
from pai_magic.local.auth import LoginThrottle, TokenSigner, check_password, generate_password, hash_password
from pai_magic.local.jobuser import JobUsers, lock_down
from pai_magic.local.runner import Runner
from pai_magic.local.store import Store, now_ms

log = logging.getLogger("pai_magic.local")

USERNAME_RE = segments.USERNAME_RE
STORAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_VC = "default"
DEFAULT_STORAGE = "default"
MAX_LIMIT = 50000
DEFAULT_LIMIT = 5000
TAIL_BYTES = 16384  # the log-manager's tail mode: "Range: bytes=-16384"
ORDER_FIELDS = {
    "jobName": "job_name", "submissionTime": "submission_time", "username": "username", "vc": "vc",
    "retries": "retries", "totalTaskNumber": "total_tasks", "totalGpuNumber": "total_gpu", "state": "state",
    "completionTime": "completed_time", "jobPriority": None,
}


class ApiError(Exception):
    """An answer ``{code, message}`` with an HTTP status, as the rest-server sends them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def unauthorized(message: str = "Your token is invalid.") -> ApiError:
    return ApiError(401, "UnauthorizedUserError", message)


@dataclass
class Caller:
    """The authenticated side of a request (never holds the token itself)."""

    username: str
    admin: bool
    application: bool
    payload: dict[str, Any]


class LocalBackend:
    """State and rules of one embedded backend over one data directory."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", *, scrub_env: tuple[str, ...] = (),
                 ssh_starter: Any = None, mount_roots: tuple[Path, ...] = (), job_user: str | None = None,
                 gpus: int = 0) -> None:
        if gpus < 0:
            raise ValueError(f"--gpus must be 0 or more, got {gpus}")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.data_dir, 0o700)
        except OSError:
            pass
        self.host = host
        self.store = Store(self.data_dir / "backend.sqlite")
        self.signer = TokenSigner(self._secret())
        (self.data_dir / "storages" / DEFAULT_STORAGE).mkdir(parents=True, exist_ok=True)
        self.job_users = JobUsers(self.data_dir, job_user)
        if self.job_users.active:
            lock_down(self.data_dir)
        self.runner = Runner(self.store, self.data_dir, host, scrub_env=scrub_env, ssh_starter=ssh_starter,
                             mount_roots=mount_roots, job_users=self.job_users, gpus=gpus)
        self.public_url = ""  # set by the server once bound: used for log links
        # the HTTP handlers run every request's work here, off the event loop (handlers.py)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pai-local-http")
        self.submit_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pai-local-submit")
        self.logins = LoginThrottle()
        # the protocol validator imports jsonschema, which takes about a second to build its
        # format grammars: do it now, off the request path, so the first submit is not slow
        threading.Thread(target=_warm_protocol, name="pai-local-warmup", daemon=True).start()

    def _secret(self) -> bytes:
        path = self.data_dir / "secret.key"
        if path.exists():
            return bytes.fromhex(path.read_text().strip())
        key = pysecrets.token_bytes(32)
        write_private(path, key.hex())
        return key

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.submit_executor.shutdown(wait=False, cancel_futures=True)
        self.runner.shutdown()
        self.store.close()

    # -- users -----------------------------------------------------------------------------
    def ensure_user(self, username: str | None = None, password: str | None = None, *,
                    admin: bool = True) -> tuple[str, str]:
        """Create (or reset) a user; without a password one is generated and saved 0600.

        The generated password goes to ``<data dir>/credentials.json`` and is never printed,
        so the CLI can log in for the person without showing it.
        """
        username = username or _login_name()
        if not USERNAME_RE.match(username):
            raise ValueError(f"user name {username!r} must match [A-Za-z0-9_.-]+")
        cred_path = self.data_dir / "credentials.json"
        generated = False
        if password is None:
            saved = read_credentials(self.data_dir)
            if saved and saved[0] == username and self.store.get_user(username):
                return saved
            password = generate_password()
            generated = True
        if len(password) < 6:
            raise ValueError("the password must have at least 6 characters (the rest-server's rule)")
        existing = self.store.get_user(username)
        if existing and check_password(password, existing["password_hash"]):
            pass
        else:
            self.store.put_user(username, hash_password(password), admin=admin,
                                extension=(existing or {}).get("extension") or {})
        if generated:
            write_private(cred_path, json.dumps({"user": username, "password": password}))
        return username, password

    def create_user(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        self._not_application(caller)
        username = body.get("username")
        password = body.get("password")
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise ApiError(400, "InvalidParametersError", '"username" is required and must match [\\w.-]+')
        if not isinstance(password, str) or len(password) < 6:
            raise ApiError(400, "InvalidParametersError", '"password" length must be at least 6 characters long')
        if not caller.admin:
            raise ApiError(403, "ForbiddenUserError", "Non-admin is not allow to do this operation.")
        if self.store.get_user(username):
            raise ApiError(409, "ConflictUserError", f"User name {username} already exists.")
        ext = body.get("extension") if isinstance(body.get("extension"), dict) else {}
        self.store.put_user(username, hash_password(password), admin=bool(body.get("admin")),
                            email=str(body.get("email") or ""), extension=ext)
        return {"message": "User is created successfully"}

    def admin_update_user(self, caller: Caller, body: Any) -> dict[str, Any]:
        """``PUT /users`` (basic authn, admins): the rest-server's basicAdminUserUpdate.

        Checks run in its order (application token 403, the Joi schema 400, admin 403, unknown
        user 404); a new password revokes the user's browser tokens, not application ones.
        """
        self._not_application(caller)
        allowed = ("username", "email", "virtualCluster", "admin", "password", "extension")
        data, patch = _user_update_body(body, allowed)
        username = data.get("username")
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise ApiError(400, "InvalidParametersError", '"username" is required and must match [\\w.-]+')
        if patch:  # Joi.empty(null): a null value counts as absent
            data = {k: v for k, v in data.items() if v is not None}
        else:
            for key in allowed[1:]:
                if key not in data:
                    raise ApiError(400, "InvalidParametersError", f'"{key}" is required')
        checks = {"email": lambda v: isinstance(v, str) and "@" in v,
                  "virtualCluster": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                  "admin": lambda v: isinstance(v, bool),
                  "password": lambda v: isinstance(v, str) and len(v) >= 6,
                  "extension": lambda v: isinstance(v, dict)}
        for key, ok in checks.items():
            if key in data and not ok(data[key]):
                raise ApiError(400, "InvalidParametersError", f'"{key}" is not valid')
        if not caller.admin:
            raise ApiError(403, "ForbiddenUserError", "Non-admin is not allow to do this operation.")
        user = self.store.get_user(username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} not found.")
        for vc in data.get("virtualCluster") or []:
            if vc != DEFAULT_VC:
                raise ApiError(404, "NoVirtualClusterError", f"Virtual cluster {vc} is not found.")
        fields: dict[str, Any] = {}
        if "email" in data:
            fields["email"] = data["email"]
        if "admin" in data:
            fields["admin"] = int(data["admin"])
        if "password" in data:
            fields["password_hash"] = hash_password(data["password"])
        if "extension" in data:
            merged = dict(user["extension"])
            merged.update(data["extension"])
            fields["extension"] = merged
        self.store.update_user(username, **fields)
        if "password_hash" in fields:
            self.store.revoke_browser_tokens(username)
        return {"message": f"Update user {username} successfully"}

    def delete_user(self, caller: Caller, username: str) -> dict[str, Any]:
        """``DELETE /users/{username}``: admins only, and an admin cannot be removed."""
        self._not_application(caller)
        if not caller.admin:
            raise ApiError(403, "ForbiddenUserError", "Non-admin is not allow to do this operation.")
        user = self.store.get_user(username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} not found.")
        if user["admin"]:
            raise ApiError(403, "RemoveAdminError", f"Admin {username} is not allowed to remove.")
        self.store.delete_user(username)
        return {"message": "user is removed successfully"}

    def user_info(self, username: str) -> dict[str, Any]:
        user = self.store.get_user(username)
        if user is None:  # the rest-server answers 400 here (controllers/v2/user.js getUser), not 404
            raise ApiError(400, "NoUserError", f"User {username} is not found.")
        groups = ["default", "admingroup"] if user["admin"] else ["default"]
        return {"username": user["username"], "grouplist": groups, "email": user["email"],
                "extension": user["extension"], "admin": user["admin"], "virtualCluster": [DEFAULT_VC],
                "storageConfig": []}

    def all_users(self) -> list[dict[str, Any]]:
        return [self.user_info(r["username"]) for r in self.store.query("SELECT username FROM users ORDER BY username")]

    def update_me(self, caller: Caller, body: Any) -> dict[str, Any]:
        """``PUT /users/me``: patch semantics; ``extension`` keys replace their old values."""
        self._not_application(caller)
        data, patch = _user_update_body(body, ("username", "email", "newPassword", "oldPassword", "extension"))
        username = data.get("username")
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise ApiError(400, "InvalidParametersError", '"username" is required')
        if not patch:
            for key in ("email", "newPassword"):
                if key not in data:
                    raise ApiError(400, "InvalidParametersError", f'"{key}" is required')
        if "newPassword" in data and data["newPassword"] is not None:
            if not isinstance(data["newPassword"], str) or len(data["newPassword"]) < 6:
                raise ApiError(400, "InvalidParametersError", '"newPassword" length must be at least 6 characters long')
            if "oldPassword" not in data:
                raise ApiError(400, "InvalidParametersError", '"oldPassword" is required')
        ext = data.get("extension")
        if ext is not None and not isinstance(ext, dict):
            raise ApiError(400, "InvalidParametersError", '"extension" must be an object')
        if isinstance(ext, dict) and "sshKeys" in ext:
            keys = ext["sshKeys"]
            if not isinstance(keys, list) or not all(isinstance(k, dict) and isinstance(k.get("value"), str)
                                                     for k in keys):
                raise ApiError(400, "InvalidParametersError",
                               '"extension.sshKeys" must be a list of {title, value, time}')
        if username != caller.username:
            raise ApiError(403, "ForbiddenUserError", "Can't update other user's data")
        user = self.store.get_user(username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} not found.")
        fields: dict[str, Any] = {}
        if data.get("email") is not None:
            fields["email"] = str(data["email"])
        if data.get("newPassword") is not None:
            if not check_password(str(data.get("oldPassword") or ""), user["password_hash"]):
                raise ApiError(403, "ForbiddenUserError", "Pls input the correct password.")
            fields["password_hash"] = hash_password(data["newPassword"])
        if ext:
            merged = dict(user["extension"])
            merged.update(ext)
            fields["extension"] = merged
        self.store.update_user(username, **fields)
        if "password_hash" in fields:
            self.store.revoke_browser_tokens(username)
        return {"message": f"Update user {username} successfully"}

    # -- authentication --------------------------------------------------------------------
    def authenticate(self, header: str | None) -> Caller:
        if not header:
            raise unauthorized("Guest is not allowed to do this operation.")
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        payload: dict[str, Any] | None = None
        if scheme.lower() == "bearer":
            payload = self.signer.verify(credentials)
        elif scheme.lower() == "basic":
            import base64

            try:
                raw = base64.b64decode(credentials).decode()
                user, _, token = raw.partition(":")
            except ValueError:  # UnicodeDecodeError is one
                raise unauthorized() from None
            payload = self.signer.verify(token)
            if payload is not None and (payload.get("username") != user or not payload.get("application")):
                payload = None
            credentials = token
        if payload is None or not self.store.has_token(credentials):
            raise unauthorized()
        user_row = self.store.get_user(payload["username"])
        if user_row is None:
            raise unauthorized()
        payload = dict(payload)
        payload["admin"] = user_row["admin"]
        return Caller(payload["username"], user_row["admin"], bool(payload.get("application")), payload)

    def login(self, body: Mapping[str, Any]) -> dict[str, Any]:
        username = body.get("username")
        password = body.get("password")
        if not isinstance(username, str) or not username:
            raise ApiError(400, "InvalidParametersError", '"username" is required')
        if not USERNAME_RE.match(username):
            raise ApiError(400, "InvalidParametersError",
                           f'"username" with value "{username}" fails to match the username pattern')
        if not isinstance(password, str) or not password:
            raise ApiError(400, "InvalidParametersError", '"password" is required')
        if len(password) < 6:
            raise ApiError(400, "InvalidParametersError", '"password" length must be at least 6 characters long')
        user = self.store.get_user(username)
        if user is None:
            self.logins.failed(username)
            raise ApiError(400, "NoUserError", f"User {username} is not found.")
        if not check_password(password, user["password_hash"]):
            self.logins.failed(username)
            raise ApiError(400, "IncorrectPasswordError", "Password is incorrect.")
        self.logins.succeeded(username)
        token = self._issue(username, application=False)
        return {"user": username, "token": token, "admin": user["admin"], "hasGitHubPAT": None}

    def _issue(self, username: str, application: bool) -> str:
        token, expires = self.signer.sign(username, application)
        self.store.add_token(token, username, application, expires)
        return token

    def issue_token(self, username: str, application: bool = False) -> str:
        """A token for ``username`` without a password (the CLI, in the same data dir)."""
        if self.store.get_user(username) is None:
            raise KeyError(username)
        return self._issue(username, application)

    def logout(self, caller: Caller, header: str) -> dict[str, Any]:
        self._not_application(caller)
        token = header.partition(" ")[2].strip()
        self.store.revoke_token(token)
        return {"message": "Logout successfully"}

    def list_tokens(self, caller: Caller) -> dict[str, Any]:
        self._not_application(caller)
        return {"tokens": self.store.list_tokens(caller.username)}

    def create_application_token(self, caller: Caller) -> dict[str, Any]:
        self._not_application(caller)
        return {"token": self._issue(caller.username, application=True), "application": True}

    def revoke_token(self, caller: Caller, token: str) -> dict[str, Any]:
        self._not_application(caller)
        payload = self.signer.verify(token)
        if payload is None:
            # the rest-server answers 500 UnknownError here (jwt.decode of garbage throws); a bad
            # parameter is the caller's error, so the embedded backend says 400
            raise ApiError(400, "InvalidParametersError", "Token is invalid")
        if payload.get("username") != caller.username:
            raise ApiError(403, "ForbiddenUserError",
                           f"User {caller.username} is not allowed to do this operation.")
        self.store.revoke_token(token)
        return {"message": "revoke successfully"}

    @staticmethod
    def _not_application(caller: Caller) -> None:
        if caller.application:
            raise ApiError(403, "ForbiddenUserError", "Applications are not allowed to do this operation.")

    # -- cluster ---------------------------------------------------------------------------
    def virtual_clusters(self) -> dict[str, Any]:
        return {DEFAULT_VC: self._vc_view()}

    def virtual_cluster(self, name: str) -> dict[str, Any]:
        if name != DEFAULT_VC:
            raise ApiError(404, "NoVirtualClusterError", f"Virtual cluster {name} is not found.")
        return self._vc_view()

    def _vc_view(self) -> dict[str, Any]:
        cpus = os.cpu_count() or 1
        mem_mb = _memory_mb()
        used_cpu = used_mem = used_gpu = 0
        rows = self.store.query("SELECT j.run_spec, t.role FROM tasks t JOIN jobs j ON j.name = t.job "
                                "WHERE t.state IN ('RUNNING', 'STOPPING')")
        cache: dict[str, Any] = {}
        for row in rows:
            spec = cache.setdefault(row["run_spec"], json.loads(row["run_spec"]))
            res = spec["roles"].get(row["role"], {})
            used_cpu += int(res.get("cpu", 0))
            used_mem += int(res.get("memoryMB", 0))
            used_gpu += int(res.get("gpu", 0))
        gpus = self.runner.gpus
        total = {"cpu": cpus, "memory": mem_mb, "gpu": gpus, "vCores": cpus, "GPUs": gpus}
        used = {"cpu": used_cpu, "memory": used_mem, "gpu": used_gpu, "vCores": used_cpu, "GPUs": used_gpu}
        used_capacity = min(100.0, 100.0 * used_cpu / cpus) if cpus else 0.0
        return {"capacity": 100, "usedCapacity": used_capacity, "maxCapacity": 100, "dedicated": False,
                "resourcesUsed": used, "resourcesGuaranteed": dict(total), "resourcesTotal": dict(total),
                "nodeList": ["localhost"], "status": "RUNNING"}

    # -- storages --------------------------------------------------------------------------
    def _storage_names(self) -> list[str]:
        root = self.data_dir / "storages"
        return sorted(p.name for p in root.iterdir() if p.is_dir() and STORAGE_NAME_RE.match(p.name))

    def storages(self, default_only: bool = False) -> dict[str, Any]:
        names = [DEFAULT_STORAGE] if default_only else self._storage_names()
        return {"storages": [{"name": n, "share": True, "volumeName": f"{n}-volume", "default": n == DEFAULT_STORAGE}
                             for n in names]}

    def storage(self, name: str) -> dict[str, Any]:
        if not STORAGE_NAME_RE.match(name) or name not in self._storage_names():
            raise ApiError(404, "NoStorageError", f"Storage {name} is not found.")
        path = (self.data_dir / "storages" / name).resolve()
        return {"name": name, "share": True, "volumeName": f"{name}-volume", "default": name == DEFAULT_STORAGE,
                "type": "nfs", "data": {"server": "127.0.0.1", "path": str(path)}, "readOnly": False,
                "mountOptions": []}

    # -- jobs ------------------------------------------------------------------------------
    def list_jobs(self, query: Mapping[str, str]) -> Any:
        where: list[str] = []
        params: list[Any] = []
        for key, column in (("username", "username"), ("vc", "vc"), ("state", "state")):
            if key in query:
                values = query[key].split(",")
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if "keyword" in query:
            # the server's Op.substring is a case-sensitive LIKE '%kw%' on Postgres; instr() is
            # the same test without LIKE's wildcards
            kw = query["keyword"]
            where.append("(instr(username, ?) > 0 OR instr(job_name, ?) > 0 OR instr(vc, ?) > 0)")
            params.extend([kw, kw, kw])
        if "jobPriority" in query:
            wanted = query["jobPriority"].split(",")
            if "default" not in wanted:  # every local job has the default priority
                where.append("0")
        offset = _int_param(query, "offset", 0)
        limit = _int_param(query, "limit", DEFAULT_LIMIT)
        if limit > MAX_LIMIT:
            raise ApiError(400, "InvalidParametersError", f"Limit exceeds max number {MAX_LIMIT}.")
        order_sql = "submission_time DESC, seq DESC"
        if "order" in query:
            field, _, direction = query["order"].partition(",")
            col = ORDER_FIELDS.get(field, "")
            if field in ORDER_FIELDS and direction in ("ASC", "DESC"):
                if col is None:
                    order_sql = f"seq {direction}"
                elif col == "completed_time":
                    nulls = "NULLS LAST" if direction == "ASC" else "NULLS FIRST"
                    order_sql = f"completed_time {direction} {nulls}, seq {direction}"
                else:
                    order_sql = f"{col} {direction}, seq {direction}"
        where_sql = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self.store.query(f"SELECT * FROM jobs{where_sql} ORDER BY {order_sql} LIMIT ? OFFSET ?",
                                [*params, limit, min(max(offset, 0), _SQLITE_INT_MAX)])
        data = [views.job_summary(dict(r)) for r in rows]
        if query.get("withTotalCount") == "true":
            total = self.store.one(f"SELECT COUNT(*) AS n FROM jobs{where_sql}", params)
            return {"totalCount": total["n"] if total else 0, "data": data}
        return data

    def _job_row(self, framework: str) -> dict[str, Any]:
        row = self.store.get_job(framework)
        if row is None:
            raise ApiError(404, "NoJobError", f"Job {framework} is not found.")
        return row

    def job(self, framework: str, attempt: str | None = None) -> dict[str, Any]:
        row = self._job_row(framework)
        if attempt is None:
            return views.job_detail(self.store, row)
        attempt_id = segments.number(attempt)
        if attempt_id is None:
            raise ApiError(404, "NoJobError", f"JobAttemptId {attempt} is not found in {framework}.")
        if attempt_id == row["attempt_id"]:
            return views.job_detail(self.store, row)
        old = self.store.get_history(framework, attempt_id)
        if old is None:
            raise ApiError(404, "NoJobError", f"JobAttemptId {attempt} is not found in {framework}.")
        return old

    def submit(self, caller: Caller, text: str) -> dict[str, Any]:
        job = _parse_protocol(text)
        errors = _protocol_errors(job)
        if errors:
            raise ApiError(400, "InvalidProtocolError", "; ".join(errors))
        name = str(job["name"])
        framework = f"{caller.username}~{name}"
        longest = segments.name_max(self.data_dir) - len(caller.username) - 1
        if len(name) > longest:
            # the job's folders are named user~job: a longer name would be accepted, then FAIL
            raise ApiError(400, "InvalidProtocolError",
                           f"name: {len(name)} characters is too long; for user {caller.username} a job name "
                           f"can have at most {longest} characters here")
        if self.store.job_exists(framework):
            raise ApiError(409, "ConflictJobError", f"Job {framework} already exists.")
        vc = (job.get("defaults") or {}).get("virtualCluster") or DEFAULT_VC
        if vc != DEFAULT_VC:
            raise ApiError(403, "ForbiddenUserError", f"User {caller.username} is not allowed to do operation in {vc}")
        storages = self._job_storages(job)
        run_spec, tasks_total, gpu_total = self._run_spec(caller, framework, job, vc, storages)
        t = now_ms()
        submission = (t // 1000) * 1000  # the rest-server truncates to seconds
        row = {
            "name": framework, "job_name": name, "username": caller.username, "vc": vc, "state": "WAITING",
            "execution_type": "START", "submission_time": submission, "retries": 0, "attempt_id": 0,
            "total_gpu": gpu_total, "total_tasks": tasks_total, "total_roles": len(run_spec["role_order"]),
            "config_masked": json.dumps(mask_config(job)), "run_spec": json.dumps(run_spec),
        }
        tasks = []
        for role in run_spec["role_order"]:
            for idx in range(run_spec["roles"][role]["instances"]):
                tasks.append({"job": framework, "role": role, "idx": idx, "uid": "", "state": "WAITING",
                              "ports": "{}", "attempts": "[]"})
        try:
            inserted = self.store.insert_job(row, tasks)
        except sqlite3.IntegrityError:
            inserted = False
        if not inserted:
            raise ApiError(409, "ConflictJobError", f"Job {framework} already exists.")
        for note in run_spec["notes"]:
            self.store.add_event(framework, "", "", -1, "Warning", "LocalBackend", note)
        self.runner.launch(framework)
        return {"status": 202, "message": f"Update job {name} for user {caller.username} successfully."}

    def _job_storages(self, job: dict[str, Any]) -> list[dict[str, str]]:
        extras = job.get("extras") or {}
        wanted = extras.get("storages") if isinstance(extras, dict) else None
        if wanted is None:
            return []
        if not isinstance(wanted, list):
            raise ApiError(400, "InvalidProtocolError", "extras.storages: must be a list of {name, mountPath}")
        if not wanted:
            wanted = [{"name": DEFAULT_STORAGE}]
        known = set(self._storage_names())
        result = []
        for item in wanted:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            name = str(item["name"])
            if name not in known:
                raise ApiError(404, "NoStorageError", f"Storage {name} is not found.")
            mount = item.get("mountPath", f"/mnt/{name}")
            problem = segments.mount_path_error(mount)
            if problem:
                raise ApiError(400, "InvalidProtocolError", f"extras.storages[{name}]: {problem}")
            result.append({"name": name, "mountPath": str(mount),
                           "path": str((self.data_dir / "storages" / name).resolve())})
        return result

    def _run_spec(self, caller: Caller, framework: str, job: dict[str, Any], vc: str,
                  storages: list[dict[str, str]]) -> tuple[dict[str, Any], int, int]:
        from pai_magic.core import protocol

        roles: dict[str, Any] = {}
        order = list(job["taskRoles"])
        images = {p.get("name"): p.get("uri") for p in job.get("prerequisites") or []
                  if isinstance(p, dict) and p.get("type") == "dockerimage"}
        framework_env: dict[str, Any] = {
            "PAI_FRAMEWORK_NAME": framework, "PAI_JOB_NAME": framework, "PAI_USER_NAME": caller.username,
            "PAI_DEFAULT_FS_URI": "", "PAI_TASK_ROLE_COUNT": len(order), "PAI_TASK_ROLE_LIST": ",".join(order),
            "PAI_VIRTUAL_CLUSTER": vc,
        }
        tasks_total = gpu_total = 0
        used_images: list[str] = []
        for role in order:
            tr = job["taskRoles"][role]
            res = tr.get("resourcePerInstance") or {}
            instances = int(tr.get("instances") or 1)
            completion = tr.get("completion") or {}
            min_failed = completion.get("minFailedInstances") or 1
            min_succeeded = completion.get("minSucceededInstances") or instances
            shm = (tr.get("extraContainerOptions") or {}).get("shmMB", 0)
            roles[role] = {
                "instances": instances, "commands": protocol.render_commands(job, role),
                "ports": {str(k): int(v) for k, v in (res.get("ports") or {}).items()},
                "minFailed": int(min_failed), "minSucceeded": int(min_succeeded),
                "taskRetryCount": int(tr.get("taskRetryCount") or 0),
                "cpu": int(res.get("cpu", 0)), "memoryMB": int(res.get("memoryMB", 0)), "gpu": int(res.get("gpu", 0)),
            }
            tasks_total += instances
            gpu_total += int(res.get("gpu", 0)) * instances
            framework_env[f"PAI_TASK_ROLE_TASK_COUNT_{role}"] = instances
            resources = f"{res.get('gpu', 0)},{res.get('cpu', 0)},{res.get('memoryMB', 0)},{shm}"
            framework_env[f"PAI_RESOURCE_{role}"] = resources
            framework_env[f"PAI_MIN_FAILED_TASK_COUNT_{role}"] = min_failed
            framework_env[f"PAI_MIN_SUCCEEDED_TASK_COUNT_{role}"] = min_succeeded
            uri = images.get(tr.get("dockerImage"))
            if uri and uri not in used_images:
                used_images.append(str(uri))
        framework_env.update({"PAI_USERNAME": caller.username, "PAI_TASKS_NUM": tasks_total,
                              "PAI_JOB_TASK_COUNT": tasks_total, "PAI_TASK_ROLES_NUM": len(order),
                              "PAI_JOB_TASK_ROLE_COUNT": len(order), "PAI_JOB_TASK_ROLE_LIST": ",".join(order)})
        notes = []
        if used_images:
            notes.append(f"dockerImage {', '.join(used_images)} was recorded, not run: the embedded backend runs "
                         f"the commands on this machine without a container engine.")
        if gpu_total:
            counted = (f"it held {gpu_total} of the {self.runner.gpus} GPU(s) the embedded backend counts, none real"
                       if self.runner.gpus else "no GPU was given: the embedded backend has none")
            notes.append(f"The job asked for {gpu_total} GPU(s); {counted}.")
        ssh = bool(protocol.job_has_ssh(job))
        keys: list[str] = []
        if ssh:
            user = self.store.get_user(caller.username) or {}
            for item in (user.get("extension") or {}).get("sshKeys") or []:
                if isinstance(item, dict) and isinstance(item.get("value"), str) and item["value"].strip():
                    keys.append(item["value"].strip())
            for key in protocol.ssh_user_keys(job):
                if key and key not in keys:
                    keys.append(key)
        spec = {"roles": roles, "role_order": order, "jobRetryCount": int(job.get("jobRetryCount") or 0),
                "ssh": ssh, "authorized_keys": keys, "storages": storages, "notes": notes,
                "framework_env": framework_env, "images": used_images}
        return spec, tasks_total, gpu_total

    def stop(self, caller: Caller, framework: str, body: Any) -> dict[str, Any]:
        value = body.get("value") if isinstance(body, dict) else None
        if value not in ("STOP", "START"):
            raise ApiError(400, "InvalidParametersError", '"value" must be one of [STOP, START]')
        row = self._job_row(framework)
        if row["username"] != caller.username and not caller.admin:
            raise ApiError(403, "ForbiddenUserError",
                           f"User {caller.username} is not allowed to execute job {framework}.")
        if value == "STOP":
            self.runner.stop(framework)
        return {"status": 202, "message": f"Execute job {framework} successfully."}

    def config(self, framework: str) -> str:
        """The job as submitted, secrets masked, as JSON text (the server sends an object)."""
        row = self._job_row(framework)
        return row["config_masked"]

    def task(self, framework: str, attempt: str, role: str, index: str) -> dict[str, Any]:
        row = self._job_row(framework)
        task = self._task_row(row, attempt, role, index)
        return views.task_attempts(row, task)

    def _task_row(self, row: dict[str, Any], attempt: str, role: str, index: str) -> dict[str, Any]:
        idx, attempt_id = segments.number(index), segments.number(attempt)
        if idx is None or attempt_id is None or segments.task_role(role) is None:
            raise ApiError(404, "NoTaskError", f"Task {role}-{index} is not found.")
        task = self.store.get_task(row["name"], role, idx)
        if task is None or attempt_id > row["attempt_id"]:
            raise ApiError(404, "NoTaskError", f"Task {role}-{index} is not found.")
        return task

    def log_locations(self, framework: str, attempt: str, role: str, index: str, task_attempt: str,
                      tail_mode: str | None) -> dict[str, Any]:
        row = self.store.get_job(framework)
        no_log = ApiError(404, "NoTaskLogError", "Log of task is not found.")
        if row is None:
            raise no_log
        ja, idx, ta = segments.number(attempt), segments.number(index), segments.number(task_attempt)
        if ja is None or idx is None or ta is None or segments.task_role(role) is None:
            raise no_log
        if self.store.get_task(framework, role, idx) is None:  # only a role and index of this job
            raise no_log
        folder = self.runner.log_dir(framework, ja, role, idx, ta)
        if not (folder / "all").exists():
            raise no_log
        sig = self.signer.mac(f"{framework}|{ja}|{role}|{idx}|{ta}")
        from urllib.parse import urlencode

        hostport = self.public_url.split("://", 1)[-1].rstrip("/") or self.host
        locations = []
        for name in ("stdout", "stderr", "all"):
            query = {"username": row["username"], "framework-name": framework, "job-attempt": ja,
                     "taskrole": role, "task-index": idx, "task-attempt": ta, "token": sig}
            if tail_mode == "true":
                query["tail-mode"] = "true"
            locations.append({"name": name,
                              "uri": f"/log-manager/{hostport}/api/v1/logs/user-{name}?{urlencode(query)}"})
        return {"locations": locations}

    def log_content(self, name: str, query: Mapping[str, str], range_header: str | None = None
                    ) -> tuple[int, bytes, dict[str, str]]:
        """``(status, body, headers)`` of a log file, honouring ``Range: bytes=N-`` / ``bytes=-N``
        as the log-manager's nginx does (200, 206 with Content-Range, or 416 past the end)."""
        if name not in ("stdout", "stderr", "all"):
            raise ApiError(404, "NoTaskLogError", "Log of task is not found.")
        try:
            framework, role, token = query["framework-name"], query["taskrole"], query["token"]
            ja, idx, ta = (segments.number(query[k]) for k in ("job-attempt", "task-index", "task-attempt"))
        except KeyError:
            raise ApiError(400, "InvalidParametersError", "some query parameters are missing or invalid") from None
        if (ja is None or idx is None or ta is None or segments.task_role(role) is None
                or segments.framework(framework) is None):
            raise ApiError(400, "InvalidParametersError", "some query parameters are missing or invalid")
        import hmac as _hmac

        if not _hmac.compare_digest(self.signer.mac(f"{framework}|{ja}|{role}|{idx}|{ta}"), token):
            raise unauthorized()
        path = self.runner.log_dir(framework, ja, role, idx, ta) / name
        if not path.is_file():
            raise ApiError(404, "NoTaskLogError", "Log of task is not found.")
        if query.get("tail-mode") == "true":
            range_header = f"bytes=-{TAIL_BYTES}"
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header or "")
            if not match or (not match.group(1) and not match.group(2)):
                return 200, fh.read(), {}
            first, last = match.group(1), match.group(2)
            if first:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            else:  # a suffix: the last N bytes
                start, end = max(0, size - int(last)), size - 1
            if start >= size or start > end:
                if not first and size == 0:
                    return 200, b"", {}
                return 416, b"", {"Content-Range": f"bytes */{size}"}
            fh.seek(start)  # only the asked part is read: a tail of a big log stays cheap
            data = fh.read(end + 1 - start)
        end = start + len(data) - 1
        return 206, data, {"Content-Range": f"bytes {start}-{end}/{size}"}

    def events(self, framework: str, type_: str | None) -> dict[str, Any]:
        self._job_row(framework)
        events = [views.event_view(framework, e) for e in self.store.get_events(framework, type_)]
        return {"totalCount": len(events), "data": events}


def mask_config(job: dict[str, Any]) -> dict[str, Any]:
    """The rest-server replaces the whole ``secrets`` block by ``"******"`` (and the
    protocol module also masks a registry password written in clear)."""
    from pai_magic.core import protocol

    return protocol.mask_secrets(job)


def _parse_protocol(text: str) -> dict[str, Any]:
    from pai_magic.core import protocol
    from pai_magic.core.errors import InvalidInputError

    try:
        return protocol.parse_protocol(text)
    except InvalidInputError as exc:
        raise ApiError(400, "InvalidProtocolError", str(exc)) from None


def _protocol_errors(job: dict[str, Any]) -> list[str]:
    from pai_magic.core import protocol

    return list(protocol.protocol_errors(job))


def _warm_protocol() -> None:
    try:
        from pai_magic.core import protocol

        protocol.protocol_errors({})
    except Exception as exc:  # only a warm-up: the submit path reports real problems
        log.debug("embedded backend: protocol warm-up failed: %s", exc)


#: SQLite integers are 64-bit: a larger offset (past every job anyway) must not overflow into a 500.
_SQLITE_INT_MAX = 2**63 - 1


def _int_param(query: Mapping[str, str], key: str, default: int) -> int:
    if key not in query:
        return default
    try:
        return int(str(query[key]).strip())
    except ValueError:
        raise ApiError(400, "InvalidParametersError", f"{key} must be an integer") from None


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1024


def _login_name() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "pai"
    name = re.sub(r"[^\w.-]", "_", name) or "pai"
    return name


def read_credentials(data_dir: Path) -> tuple[str, str] | None:
    """The default user's name and password saved by the backend, or None."""
    path = Path(data_dir) / "credentials.json"
    try:
        data = json.loads(path.read_text())
        return str(data["user"]), str(data["password"])
    except (OSError, ValueError, KeyError):
        return None


def _user_update_body(body: Any, allowed: tuple[str, ...]) -> tuple[dict[str, Any], bool]:
    """``{data, patch}`` of the two ``PUT /users`` routes, checked as their Joi schemas do
    (the first problem wins): ``(data, patch)``."""
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParametersError", '"value" must be an object')
    unknown = set(body) - {"data", "patch"}
    if unknown:
        raise ApiError(400, "InvalidParametersError", f'"{sorted(unknown)[0]}" is not allowed')
    patch = body.get("patch", False)
    if not isinstance(patch, bool):
        raise ApiError(400, "InvalidParametersError", '"patch" must be a boolean')
    data = body.get("data")
    if not isinstance(data, dict):
        raise ApiError(400, "InvalidParametersError", '"data" is required')
    bad = set(data) - set(allowed)
    if bad:
        raise ApiError(400, "InvalidParametersError", f'"{sorted(bad)[0]}" is not allowed')
    return data, patch
