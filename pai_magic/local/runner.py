"""Runs the embedded backend's jobs as local processes, the way a cluster runs containers.

Each task instance is ``bash <rendered commands>`` in its own working directory, under its
own parent process, ``shim.py`` (a child subreaper: like a container's init it adopts every
orphan the task leaves, ends them all when the main command ends, and passes a STOP on to
all of them), with the ``PAI_*`` environment the OpenPAI runtime exports. States follow the
frameworkcontroller: a job attempt completes when
a task role's failed count reaches ``minFailedInstances`` (FAILED, the failing task's exit
code) or its succeeded count reaches ``minSucceededInstances`` (SUCCEEDED), or when every
task has ended; the remaining tasks are then killed (exit code -220, STOPPED). A failed
task is restarted up to ``taskRetryCount`` times, a failed attempt up to ``jobRetryCount``.
A user STOP completes the job STOPPED with exit code -210.

Everything the HTTP side shows is written to the store as it happens, so a backend that is
killed loses nothing: at the next start ``recover()`` ends the orphaned tasks (their shims
and every process found by the ``PAI_LOCAL_TASK_UID`` marker in its environment) and marks the job FAILED
with the diagnostic "the embedded backend stopped while the job ran".
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pai_magic.local import segments
from pai_magic.local.jobuser import JobUsers, python_unreachable, unpassable_parent
from pai_magic.local.store import Store, now_ms

log = logging.getLogger("pai_magic.local")

STOP_EXIT_CODE = -210        # frameworkcontroller: StopFrameworkRequested
COMPLETION_KILL_CODE = -220  # frameworkcontroller: FrameworkAttemptCompletion (task killed)
BACKEND_LOST_CODE = -1
BACKEND_LOST = "the embedded backend stopped while the job ran"
STOP_GRACE_SECONDS = 3.0
MARKER = "PAI_LOCAL_TASK_UID"
SHIM_PATH = str(Path(__file__).with_name("shim.py"))
USER_STOP = "Stop to complete current job attempt: user requested"
RETRY_MAX_SECONDS = 10.0
RECONCILE_SECONDS = 5.0
DRAIN_SECONDS = 5.0  # how long a task's output is still read after its shim ended
ACTIVE = ("WAITING", "RUNNING", "STOPPING")


def is_disk_full(exc: BaseException | None) -> bool:
    """A failed write because the data disk is full (a file write, or sqlite's SQLITE_FULL)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


# variables of the backend's own process that must never leak into a task
_SCRUB_PREFIXES = ("PAI_",)
_SCRUB_NAMES = {"PAI_TOKEN", "PAI_PASSWORD"}


def storage_env_name(name: str) -> str:
    """``PAI_STORAGE_<NAME>_PATH``: the storage folder, always set for a mounted storage."""
    return "PAI_STORAGE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_PATH"


def safe_dir_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.~-]", "_", text)


@dataclass
class _Proc:
    """One running task attempt."""

    job: str
    role: str
    idx: int
    uid: str
    popen: subprocess.Popen
    ssh: Any = None
    killed_reason: str | None = None
    thread: threading.Thread | None = None
    note: str = ""  # one line the task's stderr ends with when it fails (e.g. its uid cannot run our Python)
    signal: int = 0  # the signal that killed the task's shim: never one the backend sends it


@dataclass
class _Outcome:
    state: str
    exit_code: int
    message: str
    role: str | None = None
    idx: int | None = None


@dataclass
class _JobRuntime:
    lock: threading.RLock = field(default_factory=threading.RLock)
    procs: dict[tuple[str, int], _Proc] = field(default_factory=dict)
    completing: _Outcome | None = None
    ports_in_use: set[int] = field(default_factory=set)


class Runner:
    """Starts, watches, stops and recovers jobs; the HTTP handlers only call its methods."""

    def __init__(self, store: Store, data_dir: Path, host: str = "127.0.0.1",
                 scrub_env: tuple[str, ...] = (), ssh_starter: Callable[..., Any] | None = None,
                 mount_roots: tuple[Path, ...] = (), job_users: JobUsers | None = None, gpus: int = 0) -> None:
        self.store = store
        # GPUs counted (none is real): a job asking more than are free waits, as on a full
        # cluster; 0 counts none, and jobs asking GPUs run at once without them
        self.gpus = int(gpus)
        self._gpu_lock = threading.Lock()
        self._gpu_held: dict[str, int] = {}
        self.job_users = job_users or JobUsers(data_dir, "root")
        self.mount_roots = tuple(Path(os.path.abspath(r)) for r in mount_roots)
        self._launching: set[str] = set()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._retry_delays: dict[str, float] = {}
        self._stop_reconcile = threading.Event()
        self._reconciler: threading.Thread | None = None
        self.data_dir = Path(data_dir)
        self.host = host
        self._runtimes: dict[str, _JobRuntime] = {}
        self._rt_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pai-local-launch")
        self._closing = False
        self._scrub = set(scrub_env)
        self._ssh_starter = ssh_starter
        self._ports_lock = threading.Lock()
        self._ports_in_use: set[int] = set()

    # -- paths -----------------------------------------------------------------------------
    def job_dir(self, job: str) -> Path:
        return self._under(self.data_dir / "jobs", safe_dir_name(job))

    def task_dir(self, job: str, role: str, idx: int) -> Path:
        return self._under(self.job_dir(job), f"{role}-{int(idx)}")

    def log_dir(self, job: str, job_attempt: int, role: str, idx: int, task_attempt: int) -> Path:
        return self._under(self.data_dir / "logs", safe_dir_name(job), str(int(job_attempt)), role, str(int(idx)),
                           str(int(task_attempt)))

    @staticmethod
    def _under(root: Path, *parts: str) -> Path:
        """``root/parts...``, refused (ValueError) when a part is empty, a dot name or has a slash:
        callers check segments first (segments.py); this is the last line."""
        for part in parts:
            if not part or part in (".", "..") or "/" in part or "\0" in part:
                raise ValueError(f"unsafe path segment {part!r}")
        path = root.joinpath(*parts)
        if not segments.inside(root, path):
            raise ValueError(f"{path} leaves {root}")
        return path

    def storage_root(self) -> Path:
        return self.data_dir / "storages"

    def _rt(self, job: str) -> _JobRuntime:
        with self._rt_lock:
            rt = self._runtimes.get(job)
            if rt is None:
                rt = self._runtimes[job] = _JobRuntime()
            return rt

    # -- public API ------------------------------------------------------------------------
    def launch(self, job: str) -> None:
        """Start a WAITING job's current attempt in the background."""
        if not self._closing:
            self._launching.add(job)
            self._pool.submit(self._guarded, self._launch_attempt, job)

    def stop(self, job: str) -> None:
        """User STOP: kill every task's process group; the job ends STOPPED (-210)."""
        rt = self._rt(job)
        with rt.lock:
            row = self.store.get_job(job)
            if row is None or row["state"] in ("SUCCEEDED", "FAILED", "STOPPED"):
                if row is not None:
                    self.store.update_job(job, execution_type="STOP")
                return
            self.store.update_job(job, execution_type="STOP")
            if not rt.procs:
                self._finalize(job, rt, _Outcome("STOPPED", STOP_EXIT_CODE, USER_STOP))
                return
            self.store.update_job(job, state="STOPPING")
            rt.completing = _Outcome("STOPPED", STOP_EXIT_CODE, "Stop to complete current job attempt: user requested")
            self._kill_all(rt, "the user stopped the job")

    def recover(self) -> None:
        """After a start: orphaned tasks are killed, interrupted jobs end FAILED, waiting ones start."""
        active = self.store.active_jobs()
        uids: set[str] = set()
        for job in active:
            for task in self.store.get_tasks(job["name"]):
                if task["uid"]:
                    uids.add(task["uid"])
        if uids:
            kill_marked_processes(uids)
        for job in active:
            name = job["name"]
            tasks = self.store.get_tasks(name)
            never_started = job["state"] == "WAITING" and all(t["launched_time"] is None for t in tasks)
            if never_started and job["execution_type"] != "STOP":
                self.launch(name)
                continue
            # retried if it cannot be written yet (a full disk must not stop the backend starting)
            self._retrying(f"recovering {name}", self._mark_lost, name, tasks, job)

    def shutdown(self) -> None:
        """Graceful backend stop: end every task and record the jobs as interrupted."""
        self._closing = True
        self._stop_reconcile.set()
        # let a launch in progress finish first, so no task starts after the kill below
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._rt_lock:
            runtimes = list(self._runtimes.items())
        for _job, rt in runtimes:
            with rt.lock:
                for proc in list(rt.procs.values()):
                    _kill(proc.popen.pid, signal.SIGUSR1)  # the shim SIGKILLs the whole task
        for _job, rt in runtimes:
            for proc in list(rt.procs.values()):
                if proc.thread is not None:
                    proc.thread.join(timeout=5)
        try:
            for job in self.store.active_jobs():
                self._mark_lost(job["name"], self.store.get_tasks(job["name"]), job)
        except Exception as exc:  # the next start recovers these jobs
            log.warning("embedded backend: could not record the interrupted jobs: %s", exc)

    # -- internals -------------------------------------------------------------------------
    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a launch bug must not kill the backend; the job records it
            log.exception("embedded backend: %s%s failed", fn.__name__, args[:1])
            if args:
                job = args[0]
                why = ("the data disk of the embedded backend was full" if is_disk_full(exc)
                       else "see its log")
                outcome = _Outcome("FAILED", BACKEND_LOST_CODE, f"the embedded backend could not start the job ({why})")
                self._retrying(f"failing {job}", self._fail_launch, job, outcome)
        finally:
            if fn == self._launch_attempt and args:
                self._launching.discard(args[0])

    def _fail_launch(self, job: str, outcome: _Outcome) -> None:
        rt = self._rt(job)
        with rt.lock:
            if rt.procs:  # the tasks that did start end; their exits finalize the job FAILED
                rt.completing = outcome
                self._kill_all(rt, "the job could not start")
            else:
                row = self.store.get_job(job)
                if row is not None and row["state"] in ACTIVE:
                    self._finalize(job, rt, outcome, allow_retry=False)

    # -- bookkeeping that must happen even when the disk is full for a while ------------------
    def _retrying(self, what: str, fn: Callable[..., None], *args: Any, delay: float = 0.0) -> None:
        """Run ``fn(*args)`` now (``delay`` 0) or later; on failure try again with a growing
        delay (up to RETRY_MAX_SECONDS) until it succeeds or the backend stops. Why: a write
        to sqlite or a file can fail for a while (disk full); the job must still end right."""
        if delay:
            timer = threading.Timer(delay, self._retrying, args=(what, fn, *args))
            timer.daemon = True
            timer.start()
            return
        if self._closing:
            return
        try:
            fn(*args)
        except Exception as exc:
            attempt_delay = min(RETRY_MAX_SECONDS, max(0.5, 2 * self._retry_delays.get(what, 0.25)))
            self._retry_delays[what] = attempt_delay
            if is_disk_full(exc):
                log.warning("embedded backend: %s failed, the data disk is full; retrying in %.1f s", what,
                            attempt_delay)
            else:
                log.exception("embedded backend: %s failed; retrying in %.1f s", what, attempt_delay)
            with self._pending_lock:
                self._pending.add(what)
            self._retrying(what, fn, *args, delay=attempt_delay)
            return
        with self._pending_lock:
            self._pending.discard(what)
        self._retry_delays.pop(what, None)

    def reconcile(self) -> None:
        """Bring the store in line with the processes: an active job none of whose tasks runs,
        is being launched or waits for a bookkeeping retry is finalized from what the store
        knows (never left RUNNING). Runs every RECONCILE_SECONDS on its own thread."""
        with self._pending_lock:
            if self._pending:
                return  # a retry will finish that work; sweeping now could race it
        for job in self.store.active_jobs():
            name = job["name"]
            with self._rt_lock:
                known = name in self._runtimes
            if name in self._launching or not known:
                continue  # being started, or never run by this backend (seeded into the store)
            rt = self._rt(name)
            with rt.lock:
                if rt.procs:
                    continue
                fresh = self.store.get_job(name)
                if fresh is None or fresh["state"] not in ACTIVE:
                    continue
                tasks = self.store.get_tasks(name)
                if fresh["state"] == "WAITING" and all(t["launched_time"] is None for t in tasks):
                    if fresh["execution_type"] != "STOP":
                        continue  # queued for launch
                spec = json.loads(fresh["run_spec"] or "{}")
                if fresh["execution_type"] == "STOP":
                    outcome = _Outcome("STOPPED", STOP_EXIT_CODE, USER_STOP)
                else:
                    outcome = rt.completing or (self._evaluate(name, spec) if spec.get("roles") else None) or _Outcome(
                        "FAILED", BACKEND_LOST_CODE, "the embedded backend lost track of the job's tasks (see its log)")
                log.warning("embedded backend: reconciling %s (%s, no task running): %s", name, fresh["state"],
                            outcome.state)
                rt.completing = None
                self._finalize(name, rt, outcome, allow_retry=False)

    def _reconcile_loop(self) -> None:
        while not self._stop_reconcile.wait(RECONCILE_SECONDS):
            try:
                self.reconcile()
            except Exception as exc:  # the disk may still be full: the next round tries again
                if not is_disk_full(exc):
                    log.exception("embedded backend: reconciling the job states failed")

    def start_reconciler(self) -> None:
        if self._reconciler is None:
            self._reconciler = threading.Thread(target=self._reconcile_loop, name="pai-local-reconcile", daemon=True)
            self._reconciler.start()

    def _mark_lost(self, name: str, tasks: list[dict[str, Any]], job: dict[str, Any]) -> None:
        t = now_ms()
        # a job the user had asked to stop ends STOPPED, as it would have: also when the backend
        # went down before it was STOPPING (still queued, or between the two writes of stop())
        stopped = job["state"] == "STOPPING" or job["execution_type"] == "STOP"
        state = "STOPPED" if stopped else "FAILED"
        code = STOP_EXIT_CODE if state == "STOPPED" else BACKEND_LOST_CODE
        for task in tasks:
            if task["state"] in ("WAITING", "RUNNING", "STOPPING"):
                self.store.update_task(name, task["role"], task["idx"], state=state, exit_code=code,
                                       diagnostics=BACKEND_LOST, completed_time=t, pid=None)
        diag = BACKEND_LOST if state == "FAILED" else "Stop to complete current job attempt: user requested"
        notes = json.loads(job["run_spec"] or "{}").get("notes", [])
        self.store.update_job(name, state=state, app_exit_code=code, completed_time=t, attempt_completed=t,
                              diagnostics=_join_diag(diag, notes),
                              trigger=json.dumps({"message": diag, "taskRoleName": None, "taskIndex": None}))
        self.store.add_event(name, "", "", -1, "Warning", "BackendStopped", diag)
        self.remove_created(name)

    def _launch_attempt(self, job: str) -> None:
        rt = self._rt(job)
        with rt.lock:
            row = self.store.get_job(job)
            if row is None or row["state"] != "WAITING" or row["execution_type"] == "STOP" or self._closing:
                return
            if not self._hold_gpus(job, int(row["total_gpu"] or 0)):
                return  # stays WAITING; a job that ends frees its GPUs and launches the waiting ones
            spec = json.loads(row["run_spec"])
            attempt = row["attempt_id"]
            tasks = self.store.get_tasks(job)
            t = now_ms()
            # gang allocation: every task's ports are known before any task starts
            ports: dict[tuple[str, int], dict[str, list[int]]] = {}
            for task in tasks:
                role_spec = spec["roles"][task["role"]]
                ports[(task["role"], task["idx"])] = self._allocate_ports(role_spec.get("ports", {}))
            rt.ports_in_use = {p for d in ports.values() for lst in d.values() for p in lst}
            cluster_env = self._cluster_env(spec, tasks, ports)
            if row["created_time"] is None:
                self.store.update_job(job, created_time=t)
            self.store.update_job(job, attempt_created=t)
            for task in tasks:
                key = (task["role"], task["idx"])
                self._start_task(job, row, spec, task, ports[key], cluster_env, attempt, task_attempt=0)
            t2 = now_ms()
            fields: dict[str, Any] = {"state": "RUNNING", "attempt_launched": t2}
            if row["launched_time"] is None:
                fields["launched_time"] = t2
            if rt.completing is None:
                self.store.update_job(job, **fields)

    def _hold_gpus(self, job: str, need: int) -> bool:
        """Whether ``job`` may start now, holding ``need`` of the counted GPUs (all at once, as
        a gang scheduler gives them) until it ends."""
        if not self.gpus or need <= 0:
            return True
        with self._gpu_lock:
            if job in self._gpu_held:
                return True
            if sum(self._gpu_held.values()) + need > self.gpus:
                return False
            self._gpu_held[job] = need
            return True

    def _release_gpus(self, job: str) -> None:
        """``job``'s attempt ended: its GPUs go to the jobs waiting for them, oldest first."""
        with self._gpu_lock:
            if self._gpu_held.pop(job, None) is None:
                return
        for row in self.store.active_jobs():  # in submission order
            if row["state"] == "WAITING" and row["execution_type"] != "STOP" and int(row["total_gpu"] or 0) > 0:
                self.launch(row["name"])

    def _allocate_ports(self, wanted: dict[str, int]) -> dict[str, list[int]]:
        names = dict(wanted)
        names.setdefault("ssh", 1)
        names.setdefault("http", 1)
        result: dict[str, list[int]] = {}
        socks: list[socket.socket] = []
        with self._ports_lock:
            try:
                for name, count in names.items():
                    result[name] = []
                    for _ in range(max(int(count or 1), 1)):
                        while True:
                            sock = socket.socket()
                            sock.bind((self.host, 0))
                            socks.append(sock)
                            port = sock.getsockname()[1]
                            if port not in self._ports_in_use:
                                break
                        result[name].append(port)
                        self._ports_in_use.add(port)
            finally:
                for sock in socks:
                    sock.close()
        return result

    def _release_ports(self, ports: dict[str, list[int]]) -> None:
        with self._ports_lock:
            for lst in ports.values():
                for p in lst:
                    self._ports_in_use.discard(p)

    def _cluster_env(self, spec: dict[str, Any], tasks: list[dict[str, Any]],
                     ports: dict[tuple[str, int], dict[str, list[int]]]) -> dict[str, str]:
        env: dict[str, str] = {k: str(v) for k, v in spec.get("framework_env", {}).items()}
        instances: list[str] = []
        hosts: dict[str, list[str]] = {}
        for task in tasks:
            role, idx = task["role"], task["idx"]
            instances.append(f"{role}:{idx}")
            tp = ports[(role, idx)]
            for pname, plist in tp.items():
                text = ",".join(str(p) for p in plist)
                env[f"PAI_PORT_LIST_{role}_{idx}_{pname}"] = text
                env[f"PAI_{role}_{idx}_{pname}_PORT"] = text
            env[f"PAI_HOST_IP_{role}_{idx}"] = self.host
            hosts.setdefault(role, []).append(f"{self.host}:{tp['http'][0]}")
        for role, lst in hosts.items():
            env[f"PAI_TASK_ROLE_{role}_HOST_LIST"] = ",".join(lst)
        env["PAI_TASK_ROLE_INSTANCES"] = ",".join(instances)
        return env

    def _task_env(self, job: str, spec: dict[str, Any], role: str, idx: int, tp: dict[str, list[int]],
                  cluster_env: dict[str, str], workdir: Path, uid: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in self._scrub and k not in _SCRUB_NAMES and not k.startswith(_SCRUB_PREFIXES)}
        env.update(cluster_env)
        port_list = "".join(f"{n}:{','.join(str(p) for p in lst)};" for n, lst in tp.items())
        env.update({
            "PAI_CURRENT_TASK_ROLE_NAME": role,
            "PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX": str(idx),
            "PAI_TASK_INDEX": str(idx),
            "FC_TASKROLE_NAME": role,
            "FC_TASK_INDEX": str(idx),
            "FC_FRAMEWORK_NAME": job,
            "PAI_CURRENT_CONTAINER_IP": self.host,
            "PAI_CURRENT_CONTAINER_PORT": str(tp["http"][0]),
            "PAI_CONTAINER_HOST_IP": self.host,
            "PAI_CONTAINER_HOST_PORT": str(tp["http"][0]),
            "PAI_CONTAINER_SSH_PORT": str(tp["ssh"][0]),
            "PAI_CONTAINER_HOST_PORT_LIST": port_list,
            "PAI_WORK_DIR": str(workdir),
            "NVIDIA_VISIBLE_DEVICES": "none",
            MARKER: uid,
        })
        for pname, lst in tp.items():
            env[f"PAI_CONTAINER_HOST_{pname}_PORT_LIST"] = ",".join(str(p) for p in lst)
        for st in spec.get("storages", []):
            env[storage_env_name(st["name"])] = st["path"]
        return env

    def _mount_storages(self, job: str, spec: dict[str, Any], uid: str, role: str, idx: int,
                        workdir: Path) -> None:
        """Link each storage folder at its mountPath when the backend may create it there.

        A relative mountPath is made in the task's folder; an absolute one only under a
        configured mount root (see segments.mount_allowed). Whatever is created (links and
        the folders above them) is listed in the job's folder and removed when the job ends.
        """
        for st in spec.get("storages", []):
            target = Path(st["path"])
            target.mkdir(parents=True, exist_ok=True)
            if self.job_users.active and target.stat().st_uid == os.geteuid():
                os.chmod(target, 0o777)  # a team storage: every job user reads and writes it
            blocked = unpassable_parent(self.data_dir) if self.job_users.active else ""
            if blocked:
                self.store.add_event(job, uid, role, idx, "Warning", "StorageUnreachable", blocked)
            raw = str(st["mountPath"])
            if segments.mount_path_error(raw):  # jobs stored before the check existed
                continue
            if not segments.mount_allowed(raw, self.mount_roots):
                self.store.add_event(job, uid, role, idx, "Warning", "StorageNotLinked",
                                     f"storage {st['name']} is not linked at {raw}: the backend creates "
                                     f"links only in the task's folder or under --mount-root; "
                                     f"use ${storage_env_name(st['name'])}")
                continue
            mount = Path(raw) if Path(raw).is_absolute() else workdir / raw
            try:
                self._check_real_parent(mount, workdir)
                if mount.is_symlink():
                    current = Path(os.readlink(mount))
                    if current == target:
                        continue
                    raise FileExistsError(f"{mount} already links to {current}")
                if mount.exists():
                    raise FileExistsError(f"{mount} exists")
                created: list[str] = []
                parent = mount.parent
                while not parent.exists():
                    created.append(str(parent))
                    parent = parent.parent
                mount.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, mount)
                self._remember_created(job, [str(mount), *created])
            except OSError as exc:
                self.store.add_event(job, uid, role, idx, "Warning", "StorageNotLinked",
                                     f"storage {st['name']} is not linked at {mount} ({exc}); "
                                     f"use ${storage_env_name(st['name'])}")

    def _check_real_parent(self, mount: Path, workdir: Path) -> None:
        """The folder the link goes into, links resolved, must still be the task's folder or a
        mount root: a task may have replaced a part of the way by a link to elsewhere."""
        existing = mount.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        real = Path(os.path.realpath(existing))
        roots = [Path(os.path.realpath(r)) for r in (*self.mount_roots, workdir)]
        if not any(segments.inside(root, real) for root in roots):
            raise PermissionError(f"{mount}: the way there leads out of the allowed folders (to {real})")

    def _created_list(self, job: str) -> Path:
        return self.job_dir(job) / "created-mounts.json"

    def _remember_created(self, job: str, paths: list[str]) -> None:
        path = self._created_list(job)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = []
        known.extend(p for p in paths if p not in known)
        path.write_text(json.dumps(known))

    def remove_created(self, job: str) -> None:
        """Remove the links (and the then empty folders) this job's mounts created."""
        path = self._created_list(job)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        left = []
        for item in known:  # links first (in the order made), then their folders, deepest first
            try:
                if os.path.islink(item):
                    os.unlink(item)
                elif os.path.isdir(item):
                    os.rmdir(item)
            except OSError:
                left.append(item)
        try:
            if left:
                path.write_text(json.dumps(left))
            else:
                path.unlink()
        except OSError as exc:
            log.warning("embedded backend: could not update %s: %s", path, exc)

    def _start_task(self, job: str, row: dict[str, Any], spec: dict[str, Any], task: dict[str, Any],
                    tp: dict[str, list[int]], cluster_env: dict[str, str], attempt: int,
                    task_attempt: int) -> None:
        role, idx = task["role"], task["idx"]
        rt = self._rt(job)
        uid = uuid.uuid4().hex
        workdir = self.task_dir(job, role, idx)
        workdir.mkdir(parents=True, exist_ok=True)
        logdir = self.log_dir(job, attempt, role, idx, task_attempt)
        logdir.mkdir(parents=True, exist_ok=True)
        script = logdir / "command.sh"
        script.write_text(spec["roles"][role]["commands"] + "\n")
        identity = self.job_users.identity(row["username"])
        if identity is not None:
            # write_private() keeps making the data folder 0700 (server.json, credentials):
            # tasks under other uids need to pass it (it stays unlistable)
            os.chmod(self.data_dir, 0o711)
            # the task's own folder is its user's alone; its commands come through a file
            # descriptor the shim opens (the logs tree stays root's)
            os.chmod(self.job_dir(job), 0o711)
            os.chown(workdir, *identity)
            os.chmod(workdir, 0o700)
        env = self._task_env(job, spec, role, idx, tp, cluster_env, workdir, uid)
        if identity is not None:
            env.update(HOME=str(workdir), USER=row["username"], LOGNAME=row["username"])
        self._mount_storages(job, spec, uid, role, idx, workdir)
        t = now_ms()
        self.store.update_task(job, role, idx, uid=uid, state="WAITING", attempt_id=task_attempt,
                               ports=json.dumps({k: ",".join(str(p) for p in v) for k, v in tp.items()}),
                               container_ip=self.host, exit_code=None, diagnostics=None,
                               created_time=task["created_time"] or t, completed_time=None)
        ssh = None
        if spec.get("ssh"):
            ssh = self._start_ssh(job, uid, role, idx, tp["ssh"][0], spec.get("authorized_keys", []), workdir, env,
                                  identity)
        files = {name: open(logdir / name, "ab", buffering=0) for name in ("stdout", "stderr", "all")}
        try:
            popen = subprocess.Popen([*self._shim_argv(identity, script), "bash"], cwd=str(workdir), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, close_fds=True)
        except OSError as exc:
            for fh in files.values():
                fh.close()
            if ssh is not None:
                _close_quietly(ssh)
            self.store.update_task(job, role, idx, state="FAILED", exit_code=127,
                                   diagnostics=f"could not start bash: {exc}", completed_time=now_ms())
            raise
        proc = _Proc(job, role, idx, uid, popen, ssh)
        if identity is not None:
            proc.note = python_unreachable(identity)
            if proc.note:
                self.store.add_event(job, uid, role, idx, "Warning", "PythonUnreachable", proc.note)
        rt.procs[(role, idx)] = proc
        launched = now_ms()
        self.store.update_task(job, role, idx, state="RUNNING", pid=popen.pid, launched_time=launched)
        self.store.add_event(job, uid, role, idx, "Normal", "Started",
                             f"task {role}-{idx} started as process group {popen.pid} in {workdir}")
        proc.thread = threading.Thread(target=self._monitor, args=(proc, files, tp, attempt, task_attempt),
                                       name=f"pai-task-{role}-{idx}", daemon=True)
        proc.thread.start()

    @staticmethod
    def _shim_argv(identity: tuple[int, int] | None, script: Path) -> list[str]:
        """The task's parent process (shim.py): it ends everything the task started, runs the
        task as ``identity`` (uid, gid) when given, and hands it ``script`` as /dev/fd/N."""
        argv = [sys.executable, "-I", "-S", SHIM_PATH, "--grace", str(STOP_GRACE_SECONDS), "--script", str(script)]
        if identity is not None:
            argv += ["--uid", str(identity[0]), "--gid", str(identity[1])]
        return [*argv, "--"]

    def _start_ssh(self, job: str, uid: str, role: str, idx: int, port: int, keys: list[str], workdir: Path,
                   env: dict[str, str], identity: tuple[int, int] | None = None) -> Any:
        starter = self._ssh_starter
        if starter is None:
            # imported here, not at module level: paramiko costs a few hundred ms and most jobs
            # have no SSH. An ImportError is a broken install and fails the job loudly.
            from pai_magic.local.task_ssh import start_task_ssh

            starter = start_task_ssh
        host_keys = self.job_dir(job) / "ssh-host-keys"
        host_keys.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(host_keys, 0o700)
            # the task's sessions and SFTP act as the task's uid (files they make are its own)
            extra = {"identity": identity} if identity is not None else {}
            return starter(self.host, port, list(keys), workdir, dict(env), host_keys, **extra)
        except Exception as exc:  # the job still runs; the event says why SSH is missing
            log.warning("embedded backend: task SSH for %s %s-%s failed: %s", job, role, idx, exc)
            self.store.add_event(job, uid, role, idx, "Warning", "SshStartFailed", f"task SSH did not start: {exc}")
            return None

    def _monitor(self, proc: _Proc, files: dict[str, Any], tp: dict[str, list[int]], attempt: int,
                 task_attempt: int) -> None:
        sel = selectors.DefaultSelector()
        assert proc.popen.stdout is not None and proc.popen.stderr is not None
        sel.register(proc.popen.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.popen.stderr, selectors.EVENT_READ, "stderr")
        open_streams = 2
        code: int | None = None
        drain_until = 0.0
        lost: set[str] = set()
        try:
            while open_streams:
                for key, _ in sel.select(timeout=0.2):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    for stream in (key.data, "all"):
                        try:
                            files[stream].write(data)
                        except OSError as exc:  # the disk is full: keep reading, or the task would block
                            if stream not in lost:
                                lost.add(stream)
                                log.warning("embedded backend: %s %s-%s: output to %s lost: %s", proc.job,
                                            proc.role, proc.idx, stream, exc)
                if code is None:
                    code = proc.popen.poll()
                    if code is not None:
                        # like a container whose main process ended: the rest of the group goes too,
                        # so background children cannot hold the task open
                        _killpg(proc.popen.pid, signal.SIGKILL)
                        if code < 0:
                            # the shim itself was killed (SIGKILL from outside: a kill, the OOM
                            # killer) before it could end the task, which runs in its own
                            # session: find the task's processes by their marker, or they would
                            # run on unsupervised and hold the job RUNNING through the pipes
                            _end_marked(proc.uid)
                        drain_until = time.monotonic() + DRAIN_SECONDS
                elif time.monotonic() > drain_until:
                    # what still holds the pipes escaped even the marker (env -i): the task ended
                    log.warning("embedded backend: %s %s-%s: its output pipes stayed open after the task "
                                "ended; no longer reading them", proc.job, proc.role, proc.idx)
                    break
            code = proc.popen.wait()
            if code != 0 and proc.note and proc.killed_reason is None:
                # the likely cause, as the last line of stderr (what faces show as the reason)
                for stream in ("stderr", "all"):
                    if stream not in lost:
                        try:
                            files[stream].write(f"pai-magic local: {proc.note}\n".encode())
                        except OSError:
                            pass
        finally:
            sel.close()
            for fh in files.values():
                try:
                    fh.close()
                except OSError:
                    pass
            for stream in (proc.popen.stdout, proc.popen.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            _killpg(proc.popen.pid, signal.SIGKILL)
            # a backstop for what escaped the shim (a task that killed its shim): anything still
            # carrying this task's marker goes too
            _end_marked(proc.uid)
            if proc.ssh is not None:
                # closing waits for SSH sessions to end: keep that off the task's bookkeeping
                threading.Thread(target=_close_quietly, args=(proc.ssh,), name="pai-task-ssh-close",
                                 daemon=True).start()
        if code is None:
            code = proc.popen.wait()
        if code < 0:
            proc.signal = -code
            code = 128 - code  # killed by signal N: the container convention 128+N
        self._release_ports(tp)
        if not self._closing:
            self._guarded_exit(proc, code, attempt, task_attempt)

    def _guarded_exit(self, proc: _Proc, code: int, attempt: int, task_attempt: int) -> None:
        self._retrying(f"recording the end of {proc.job} {proc.role}-{proc.idx} ({proc.uid})",
                       self._on_task_exit_atomic, proc, code, attempt, task_attempt)

    def _on_task_exit_atomic(self, proc: _Proc, code: int, attempt: int, task_attempt: int) -> None:
        """_on_task_exit as one sqlite transaction: when a write fails (disk full) nothing of it
        stays, the task is put back as it was, and the retry starts from the same picture."""
        rt = self._rt(proc.job)
        key = (proc.role, proc.idx)
        with rt.lock:
            if rt.procs.get(key) is not proc:
                return
            before = rt.completing
            try:
                with self.store.transaction():
                    self._on_task_exit(proc, code, attempt, task_attempt)
            except Exception:
                rt.completing = before
                started = rt.procs.get(key)
                if started is not None and started is not proc:  # a task retry began: undo it
                    started.killed_reason = "its start could not be recorded"
                    _kill(started.popen.pid, signal.SIGUSR1)
                rt.procs[key] = proc
                raise

    def _on_task_exit(self, proc: _Proc, code: int, attempt: int, task_attempt: int) -> None:
        job = proc.job
        rt = self._rt(job)
        with rt.lock:
            if rt.procs.get((proc.role, proc.idx)) is not proc:
                return
            del rt.procs[(proc.role, proc.idx)]
            row = self.store.get_job(job)
            if row is None:
                return
            spec = json.loads(row["run_spec"])
            t = now_ms()
            task = self.store.get_task(job, proc.role, proc.idx) or {}
            attempts = json.loads(task.get("attempts") or "[]")
            if proc.killed_reason is not None:
                state, exit_code = "STOPPED", COMPLETION_KILL_CODE
                diag = f"Stop to complete current FrameworkAttempt: {proc.killed_reason}"
            elif code == 0:
                state, exit_code, diag = "SUCCEEDED", 0, None
            elif proc.signal:
                state, exit_code, diag = "FAILED", code, killed_from_outside(proc.signal)
            else:
                state, exit_code, diag = "FAILED", code, f"the task's commands exited with code {code}"
                if proc.note:
                    diag += f"; {proc.note}"
            attempts.append({"attemptId": task_attempt, "state": state, "exitCode": exit_code,
                             "diagnostics": diag, "uid": proc.uid, "ports": task.get("ports"),
                             "created": task.get("created_time"), "launched": task.get("launched_time"),
                             "completed": t, "jobAttemptId": attempt})
            self.store.add_event(job, proc.uid, proc.role, proc.idx, "Normal" if state == "SUCCEEDED" else "Warning",
                                 "Completed", f"task {proc.role}-{proc.idx} ended {state} with exit code {exit_code}")
            role_spec = spec["roles"][proc.role]
            retry_left = int(role_spec.get("taskRetryCount") or 0) - int(task.get("retries") or 0)
            if state == "FAILED" and retry_left > 0 and rt.completing is None and not self._closing:
                self.store.update_task(job, proc.role, proc.idx, retries=int(task.get("retries") or 0) + 1,
                                       attempts=json.dumps(attempts))
                tasks = self.store.get_tasks(job)
                fresh = self.store.get_task(job, proc.role, proc.idx)
                tp = self._allocate_ports(role_spec.get("ports", {}))
                ports_all = {(tk["role"], tk["idx"]): _parse_ports(tk["ports"]) for tk in tasks}
                ports_all[(proc.role, proc.idx)] = tp
                cluster_env = self._cluster_env(spec, tasks, ports_all)
                self._start_task(job, row, spec, fresh or task, tp, cluster_env, attempt, task_attempt + 1)
                return
            self.store.update_task(job, proc.role, proc.idx, state=state, exit_code=exit_code, diagnostics=diag,
                                   completed_time=t, pid=None, attempts=json.dumps(attempts))
            if rt.completing is None:
                rt.completing = self._evaluate(job, spec)
                if rt.completing is not None and rt.procs:
                    self.store.add_event(job, "", "", -1, "Normal", "AttemptCompleting", rt.completing.message)
                    self._kill_all(rt, "the job attempt completed")
            if rt.completing is not None and not rt.procs:
                outcome = rt.completing
                rt.completing = None
                self._finalize(job, rt, outcome)

    def _evaluate(self, job: str, spec: dict[str, Any]) -> _Outcome | None:
        tasks = self.store.get_tasks(job)
        by_role: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_role.setdefault(task["role"], []).append(task)
        last_failed = None
        for role in spec["role_order"]:
            rs = spec["roles"][role]
            failed = [t for t in by_role.get(role, []) if t["state"] == "FAILED"]
            min_failed = int(rs.get("minFailed", 1))
            if min_failed != -1 and len(failed) >= min_failed:
                last_failed = max(failed, key=lambda t: t["completed_time"] or 0)
                return _Outcome("FAILED", int(last_failed["exit_code"] or 1),
                                f"FailedTaskCount {len(failed)} has reached MinFailedTaskCount {min_failed} "
                                f"in the TaskRole {role}", role, last_failed["idx"])
        for role in spec["role_order"]:
            rs = spec["roles"][role]
            succeeded = [t for t in by_role.get(role, []) if t["state"] == "SUCCEEDED"]
            min_succeeded = int(rs.get("minSucceeded", rs.get("instances", 1)))
            if min_succeeded != -1 and len(succeeded) >= min_succeeded:
                return _Outcome("SUCCEEDED", 0,
                                f"SucceededTaskCount {len(succeeded)} has reached MinSucceededTaskCount "
                                f"{min_succeeded} in the TaskRole {role}", role, succeeded[-1]["idx"])
        if all(t["state"] in ("SUCCEEDED", "FAILED", "STOPPED") for t in tasks):
            return _Outcome("SUCCEEDED", 0, "All Tasks are completed and no user specified conditions in "
                                            "FrameworkAttemptCompletionPolicy have ever been triggered")
        return None

    def _kill_all(self, rt: _JobRuntime, reason: str) -> None:
        """SIGTERM to each task's shim: it passes it on to every process of the task and
        SIGKILLs what is left after the grace period; a backstop follows in case it cannot."""
        procs = list(rt.procs.values())
        for proc in procs:
            if proc.killed_reason is None:
                proc.killed_reason = reason
            _kill(proc.popen.pid, signal.SIGTERM)
        if procs:
            timer = threading.Timer(STOP_GRACE_SECONDS + 2.0, self._kill_hard, args=(procs,))
            timer.daemon = True
            timer.start()

    @staticmethod
    def _kill_hard(procs: list[_Proc]) -> None:
        for proc in procs:
            if proc.popen.poll() is None:
                _kill(proc.popen.pid, signal.SIGUSR1)  # the shim: SIGKILL everything below it now
            elif _group_alive(proc.popen.pid):
                _killpg(proc.popen.pid, signal.SIGKILL)

    def _finalize(self, job: str, rt: _JobRuntime, outcome: _Outcome, allow_retry: bool = True) -> None:
        row = self.store.get_job(job)
        if row is None:
            return
        spec = json.loads(row["run_spec"])
        t = now_ms()
        trigger = json.dumps({"message": outcome.message, "taskRoleName": outcome.role, "taskIndex": outcome.idx})
        self.store.update_job(job, attempt_completed=t, trigger=trigger, app_exit_code=outcome.exit_code)
        for task in self.store.get_tasks(job):
            if task["state"] in ("WAITING", "RUNNING", "STOPPING"):
                self.store.update_task(job, task["role"], task["idx"], state="STOPPED",
                                       exit_code=COMPLETION_KILL_CODE if outcome.state != "STOPPED" else STOP_EXIT_CODE,
                                       diagnostics=outcome.message, completed_time=t, pid=None)
        self._release_gpus(job)
        retries = int(row["retries"])
        if (allow_retry and outcome.state == "FAILED" and retries < int(spec.get("jobRetryCount") or 0)
                and row["execution_type"] != "STOP" and not self._closing):
            from pai_magic.local.views import job_detail  # the attempt's final picture, for /attempts/<a>

            final = dict(self.store.get_job(job) or row)
            final.update(state=outcome.state, completed_time=t,
                         diagnostics=_join_diag(outcome.message, spec.get("notes", [])))
            self.store.save_history(job, row["attempt_id"], job_detail(self.store, final))
            self.store.update_job(job, retries=retries + 1, attempt_id=row["attempt_id"] + 1, state="WAITING",
                                  app_exit_code=None, attempt_created=None, attempt_launched=None,
                                  attempt_completed=None, trigger=None)
            for task in self.store.get_tasks(job):
                self.store.update_task(job, task["role"], task["idx"], state="WAITING", exit_code=None,
                                       diagnostics=None, launched_time=None, completed_time=None, pid=None,
                                       retries=0, attempt_id=0, attempts="[]", created_time=None)
            self.store.add_event(job, "", "", -1, "Warning", "Retry",
                                 f"job attempt {row['attempt_id']} failed; retry {retries + 1} of "
                                 f"{spec.get('jobRetryCount')}")
            self.launch(job)
            return
        self.store.update_job(job, state=outcome.state, completed_time=t,
                              diagnostics=_join_diag(outcome.message, spec.get("notes", [])))
        self.remove_created(job)


def killed_from_outside(signum: int) -> str:
    """The task's reason when its shim died of a signal: the backend only ever sends the shim
    SIGTERM and SIGUSR1, which it handles, so this came from outside (a kill, the OOM killer)."""
    from pai_magic.local.shim import signal_name

    return (f"the task was killed by {signal_name(signum)} from outside the embedded backend (a kill command or the "
            f"out-of-memory killer?); its processes were ended")


def _end_marked(uid: str) -> None:
    try:
        kill_marked_processes({uid}, timeout=2.0)
    except OSError as exc:
        log.debug("embedded backend: marker scan for %s failed: %s", uid, exc)


def _join_diag(message: str, notes: list[str]) -> str:
    return "\n".join([message, *notes]) if notes else message


def _parse_ports(text: str | None) -> dict[str, list[int]]:
    raw = json.loads(text or "{}")
    return {k: [int(p) for p in str(v).split(",") if p] for k, v in raw.items()}


def _close_quietly(obj: Any) -> None:
    try:
        obj.close()
    except Exception as exc:  # closing a dead SSH server must not break bookkeeping
        log.debug("embedded backend: closing task SSH: %s", exc)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _marked(wanted: set[bytes]) -> list[tuple[int, bool]]:
    """(pid, is_shim) of every process whose environment carries one of the wanted markers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if wanted.intersection(environ):
            found.append((int(entry.name), SHIM_PATH.encode() in cmdline))
    return found


def kill_marked_processes(uids: set[str], timeout: float = 10.0) -> int:
    """End every process of the tasks ``uids`` (left over by a backend that died).

    Each task's shim is asked first (SIGUSR1): it also ends the task's processes that
    cleared their environment. Whatever still carries a marker is then SIGKILLed.
    """

    wanted = {f"{MARKER}={u}".encode() for u in uids}
    killed = 0
    deadline = time.monotonic() + timeout
    for pid, is_shim in _marked(wanted):
        if is_shim:
            _kill(pid, signal.SIGUSR1)
    while time.monotonic() < deadline:
        found = _marked(wanted)
        shims = [pid for pid, is_shim in found if is_shim]
        if not found:
            break
        if shims and time.monotonic() < deadline - timeout / 2:
            time.sleep(0.1)  # the shims are ending their tasks
            continue
        for pid, _ in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return killed
