"""One kernel job on OpenPAI, driven synchronously: submit, reach the task, start kernels in it,
keep its lease, notice its end, stop it. The provisioner (an asyncio face) runs these methods in
threads; everything here is plain core calls (REST client, SSH forwarder, SFTP).

The task side is :mod:`pai_magic.kernel.supervisor`; the file protocol between the two is
described there. Every wait is bounded; every phase is reported through ``on_phase`` (one
log line) and ``on_step`` (its machine key and the same line, for
:mod:`pai_magic.kernel.phases`, which JupyterLab shows as a notification): "submitted",
"waiting for resources", "running", "connecting", "kernel ready".
"""
from __future__ import annotations

import json
import logging
import posixpath
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pai_magic.core.errors import AuthError, InvalidInputError, PaiError, PaiTimeoutError, UnreachableError
from pai_magic.core.kinds import KERNEL, kind_stem
from pai_magic.core.models import JobDetail
from pai_magic.core.protocol.build import JobSpec, build_protocol, unique_job_name
from pai_magic.core.ssh.forward import Forward, PortForwarder
from pai_magic.kernel.spec import KernelSettings

log = logging.getLogger("pai_magic.kernel")

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
SUPERVISOR = Path(__file__).with_name("supervisor.py")
#: the relay's wire, shared with the forwarder; the supervisor imports it from beside itself
RELAY_WIRE = Path(__file__).parent.parent / "core" / "ssh" / "relay_wire.py"
FILE_POLL = 0.03
#: How long the job's command waits for the supervisor to arrive over SFTP before giving up.
BOOT_WAIT_SECONDS = 600


class KernelStartError(InvalidInputError):
    """The kernel cannot start in this job (e.g. no ipykernel in the image): one line."""


class KernelStartCancelled(PaiError):
    """The start was given up (the kernel was shut down, or the Jupyter server is exiting)."""


def boot_command(remote_dir: str, python: str, lease: float) -> str:
    """The job's only command: wait for the supervisor to be copied in, then become it.

    Why wait in shell rather than send the supervisor inline: the commands are visible in the
    portal and the job config; the supervisor and the connection file travel over SFTP only.
    """
    tries = 100 + int(BOOT_WAIT_SECONDS / 0.5)  # 100 quick looks (5 s), then every 0.5 s
    return (f'D={remote_dir}; mkdir -p -m 700 "$D" || exit 1; n=0; s=0.05; '
            f'while [ ! -f "$D/supervisor.py" ]; do n=$((n+1)); if [ $n -gt {tries} ]; then '
            'echo "pai-magic kernel: no supervisor arrived: the Jupyter server went away" >&2; exit 3; fi; '
            f'[ $n -gt 100 ] && s=0.5; sleep $s; done; exec {python} "$D/supervisor.py" "$D" {lease:g}')


def _done(fn: Callable[..., None], *args: Any) -> bool:
    """``fn(*args)`` as a condition for KernelJob._holds (which says why an SSH call failed)."""
    fn(*args)
    return True


def _storage_pairs(storages: list[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for item in storages:
        name, _, path = str(item).partition(":")
        out.append((name, path or None))
    return out


class KernelJob:
    """The job behind one kernel (and its restarts)."""

    def __init__(self, settings: KernelSettings, *, client: Any = None, kernel_name: str = "",
                 on_phase: Callable[[str], None] | None = None,
                 on_step: Callable[[str, str], None] | None = None) -> None:
        self.settings = settings.validate()
        self._client = client
        self._owns_client = client is None  # read from the profile (and read again, see _job_detail)
        self.kernel_name = kernel_name
        self.on_phase = on_phase or (lambda text: log.info("%s", text))
        self.on_step = on_step
        self.job: str | None = None
        self.user: str = ""
        self.remote_dir = ""
        self.generation = 0
        self.forwarder: PortForwarder | None = None
        self.remote_ports: list[int] = []
        self.ended: str | None = None      # why the job ended, once it has
        self.stopping = False
        self._sftp_lock = threading.RLock()
        self._lease_stop = threading.Event()
        self._lease_thread: threading.Thread | None = None
        self._supervisor_sent = False
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Give up the start under way (from another thread): its waits end at once and the
        start stops the job it submitted, instead of starting a kernel nobody will use."""
        self._cancel.set()

    def allow_start(self) -> None:
        """Forget an earlier :meth:`cancel` before a new start (called before its thread runs,
        so a cancel that comes at once is never lost)."""
        self._cancel.clear()

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise KernelStartCancelled(f"The start of the kernel in job {self.job} was cancelled.")

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from pai_magic.core.client import PaiClient
            from pai_magic.core.profiles import load_profile

            self._client = PaiClient(load_profile(self.settings.profile or None))
        return self._client

    def _job_detail(self) -> JobDetail:
        """The job's detail. A refused token reads the profile again once: the person may have
        logged out and in again since the kernel started, and a kernel that kept the revoked
        token took every refused poll for "alive" (a stop from elsewhere went unnoticed)."""
        assert self.job is not None
        try:
            return self.client.get_job(self.job)
        except AuthError:
            if not self._reload_client():
                raise
            return self.client.get_job(self.job)

    def _reload_client(self) -> bool:
        """A client with the profile's current token; False when there is no newer one."""
        if not self._owns_client or self._client is None:
            return False
        from pai_magic.core.client import PaiClient
        from pai_magic.core.profiles import load_profile

        try:
            profile = load_profile(self.settings.profile or None)
        except PaiError:
            return False
        if not profile.token or profile.token == self._client.profile.token:
            return False
        self._client = PaiClient(profile)
        return True

    def _login_error(self, exc: AuthError) -> AuthError:
        """A refused or missing token, with the login hint naming the kernelspec's profile: it is
        often not the active one, so a bare `pai-magic login` would log in elsewhere."""
        try:
            name = self.settings.profile or self.client.profile.name
        except PaiError:
            return exc
        has_token = bool(getattr(self.client.profile, "token", ""))
        why = "its token was refused by the cluster" if has_token else "it is logged out"
        # no "%pai_login" here: jupyter_server re-raises a session's start error as a new tornado
        # HTTPError, whose message doubles every "%" ("%%pai_login" in JupyterLab's dialog)
        return AuthError(f"This kernel uses profile {name!r} and {why}: run `pai-magic login --profile {name}` "
                         "in a terminal, then start the kernel again.")

    def _phase(self, key: str, text: str) -> None:
        """Report a phase (a key of :data:`pai_magic.kernel.phases.PHASE_KEYS`); a failing
        observer never breaks the start."""
        try:
            self.on_phase(f"pai-magic kernel: {text}")
        except Exception:
            pass
        if self.on_step is not None:
            try:
                self.on_step(key, text)
            except Exception:
                log.debug("on_step failed", exc_info=True)

    def _connect(self) -> Any:
        from pai_magic.core.ssh.tasks import open_task_session

        assert self.job is not None
        return open_task_session(self.client, self.job, start_wait=0)

    def _sftp(self) -> Any:
        assert self.forwarder is not None
        return self.forwarder.session().sftp()

    def _path(self, name: str) -> str:
        return posixpath.join(self.remote_dir, name)

    def _exists(self, name: str) -> bool:
        with self._sftp_lock:
            try:
                self._sftp().stat(self._path(name))
                return True
            except FileNotFoundError:
                return False
            except OSError as exc:
                if getattr(exc, "errno", None) == 2:
                    return False
                raise

    def _read(self, name: str) -> str:
        with self._sftp_lock:
            with self._sftp().open(self._path(name), "r") as fh:
                return fh.read().decode("utf-8", "replace")

    def _write(self, name: str, data: bytes, mode: int = 0o600) -> None:
        """Write atomically (temp name, chmod before the content, rename) over SFTP."""
        with self._sftp_lock:
            sftp = self._sftp()
            tmp = self._path(f".{name}.{time.monotonic_ns()}.tmp")
            with sftp.open(tmp, "w") as fh:
                sftp.chmod(tmp, mode)
                fh.write(data)
            sftp.posix_rename(tmp, self._path(name))

    # -- start -------------------------------------------------------------------------------
    def submit(self) -> str:
        from pai_magic.core.jobs import submit_job
        from pai_magic.core.ssh.keys import ensure_key

        s = self.settings
        profile = self.client.profile
        key = ensure_key(getattr(profile, "ssh_key", None))
        name = unique_job_name(kind_stem(KERNEL, self.kernel_name or "python"))
        self.remote_dir = f"/tmp/pai-kernel-{name}"
        spec = JobSpec(name=name, exact_name=True, image=s.image,
                       commands=[boot_command(self.remote_dir, s.python, s.lease_seconds)],
                       gpu=s.gpu, cpu=s.cpu, memory_mb=s.memory_mb,
                       virtual_cluster=s.virtual_cluster or profile.virtual_cluster or "default",
                       storages=_storage_pairs(s.storages), ssh_public_key=key.public_line,
                       ports={"kernel": 5}, task_role="kernel",
                       description="Jupyter kernel started by pai-magic; it ends when the kernel is shut "
                                   "down or its lease is no longer renewed.")
        self.job = submit_job(self.client, build_protocol(spec))
        self.user = self.client.user
        self.ended = None
        self.stopping = False
        self._supervisor_sent = False
        self.generation = 0
        self.remote_ports = []
        self._phase("submitted", f"submitted job {self.job} ({s.image}, {s.gpu} GPU) to {profile.name}")
        return self.job

    def wait_running(self, timeout: float) -> JobDetail:
        assert self.job is not None
        started = time.monotonic()
        deadline = started + timeout
        interval = 0.05
        said_waiting = False
        while True:
            detail: JobDetail | None = None
            try:
                detail = self._job_detail()
            except (UnreachableError, PaiTimeoutError) as exc:
                log.debug("job detail failed: %s", exc)
            if detail is not None:
                if detail.terminal:
                    raise KernelStartError(self._end_reason(detail))
                task = detail.tasks[0] if detail.tasks else None
                if task is not None and task.state == "RUNNING" and task.container_ip:
                    self._phase("running", f"job {self.job} is running on {task.container_ip}")
                    declared = task.ports.get("kernel") or []
                    if len(declared) >= len(PORT_NAMES) and not self.remote_ports:
                        self.remote_ports = [int(p) for p in declared[:len(PORT_NAMES)]]
                    return detail
                if not said_waiting:
                    said_waiting = True
                    self._phase("waiting", f"job {self.job} is {detail.state}: waiting for resources "
                                "(a cluster may take minutes to schedule and pull the image)")
            self._check_cancelled()
            if time.monotonic() > deadline:
                self.stop()
                raise PaiTimeoutError(f"Job {self.job} did not start running within {timeout:g}s, so it was "
                                      "stopped: check the virtual cluster's free resources and try again.")
            self._cancel.wait(interval)
            if time.monotonic() - started > 3.0:  # quick at first (a free node starts in ms),
                interval = min(2.0, interval * 1.5)  # then gently for a cluster's minutes

    def _ensure_forwarder(self) -> PortForwarder:
        if self.forwarder is None:
            # avoid the task's own ports: with the embedded backend the task is this machine
            self.forwarder = PortForwarder(self._connect, [Forward(0, "127.0.0.1", 0) for _ in PORT_NAMES],
                                           on_reconnect=lambda s: self._phase(
                                               "connecting", f"SSH link to job {self.job} re-established"),
                                           avoid=self.remote_ports)
        return self.forwarder

    def _boot_supervisor(self, timeout: float, early: Callable[[], None] | None = None) -> None:
        """Copy the supervisor in, then wait for its hello (or its one-line error).

        ``early`` runs just before the supervisor lands (its arrival starts it): when the job
        detail already named the kernel's ports, the connection file and the first start
        request go first, so the kernel starts the moment the supervisor does.
        """
        fwd = self._ensure_forwarder()
        self._holds(lambda: fwd.session() is not None)
        if not self._supervisor_sent:
            self._wait_for(lambda: self._exists("."), timeout, "the job to create its kernel folder")
            if early is not None:
                self._holds(lambda: _done(early))
            # the wire first: the supervisor's arrival starts it, and it imports the wire at once
            self._holds(lambda: _done(self._write, "pai_relay_wire.py", RELAY_WIRE.read_bytes(), 0o600))
            self._holds(lambda: _done(self._write, "supervisor.py", SUPERVISOR.read_bytes(), 0o600))
            self._supervisor_sent = True
        self._wait_for(lambda: self._exists("hello.json") or self._exists("error"), timeout,
                       "the kernel supervisor to start")
        if self._exists("error"):
            message = self._read("error").strip()
            self.stop()
            raise KernelStartError(message)
        hello = json.loads(self._read("hello.json"))
        if not self.remote_ports:  # the job detail did not name them: the supervisor's choice
            self.remote_ports = [int(p) for p in hello["ports"]][:len(PORT_NAMES)]
        fwd.set_remote([("127.0.0.1", p) for p in self.remote_ports])
        # the supervisor's relay carries each connection as a resumable stream, so a dropped
        # link loses no message; an older supervisor has none: direct forwards, as before
        relay = hello.get("relay")
        fwd.set_relay(int(relay) if isinstance(relay, int) and relay > 0 else None)

    def _ended_instead(self, exc: BaseException) -> KernelStartError | None:
        """After an SSH error: the job's end (one line with the task's reason) when the job
        has ended, which is what dropped the connection; None when it still runs."""
        try:
            detail = self._job_detail()
        except PaiError:
            return None
        if not detail.terminal:
            return None
        log.debug("SSH error because job %s ended: %s", self.job, exc)
        return KernelStartError(self._end_reason(detail))

    def _holds(self, cond: Callable[[], bool]) -> bool:
        """``cond()`` over SFTP; a dropped connection because the job ended says so in one line
        (e.g. the task could not run its Python) instead of paramiko's 'Server connection dropped'."""
        import paramiko

        try:
            return cond()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            ended = self._ended_instead(exc)
            if ended is not None:
                raise ended from None
            raise

    def _wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        next_state = time.monotonic() + 1.0
        while not self._holds(cond):
            self._check_cancelled()
            now = time.monotonic()
            if now > next_state:
                next_state = now + 1.0
                detail = self._job_detail()
                if detail.terminal:
                    raise KernelStartError(self._end_reason(detail))
            if now > deadline:
                raise PaiTimeoutError(f"Timed out after {timeout:g}s waiting for {what} in job {self.job}: "
                                      f"see its log (pai-magic logs {self.job}).")
            self._cancel.wait(FILE_POLL)

    def start_kernel(self, connection: dict[str, Any], *, timeout: float = 900.0) -> dict[str, Any]:
        """Start (or restart) the kernel; returns the LOCAL connection info (forwarded ports).

        ``connection`` holds key, signature_scheme, transport and the optional curve keys.
        A start given up with :meth:`cancel` stops the job (a first start) and raises
        :class:`KernelStartCancelled`.
        """
        first = self.job is None or bool(self.ended)
        try:
            return self._start_kernel(connection, timeout)
        except Exception as exc:
            # after a cancel, any error counts as the cancel (at exit paramiko closes the SSH
            # link under the start): the job submitted for this start is stopped either way
            if not self._cancel.is_set():
                raise
            if first:
                self.stop()
            if isinstance(exc, KernelStartCancelled):
                raise
            raise KernelStartCancelled(f"The start of the kernel in job {self.job} was cancelled.") from exc

    def _start_kernel(self, connection: dict[str, Any], timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        if self.job is None or self.ended:
            if self.ended:
                raise KernelStartError(self.ended)
            try:
                self.submit()
                self.wait_running(timeout)
            except AuthError as exc:
                raise self._login_error(exc) from None
            self._phase("connecting", f"connecting to job {self.job} over SSH and starting the kernel")
        else:
            self._phase("restarting", f"starting kernel {self.generation + 1} in job {self.job}")
        requested: list[int] = []

        def request_start() -> None:
            remote = dict(connection)
            remote.update(ip="127.0.0.1", transport="tcp")
            remote.update(dict(zip(PORT_NAMES, self.remote_ports)))
            self._write("kernel.json", json.dumps(remote).encode(), 0o600)
            self.generation += 1
            self._write(f"start-{self.generation}", b"", 0o600)
            requested.append(self.generation)

        self._boot_supervisor(timeout, early=request_start if self.remote_ports else None)
        if not requested:
            request_start()
        gen = self.generation
        self._wait_for(lambda: self._exists(f"kernel-{gen}.ready") or self._exists(f"kernel-{gen}.exit"),
                       timeout, "the kernel to listen")
        if self._exists(f"kernel-{gen}.exit"):
            code = self._read(f"kernel-{gen}.exit").strip()
            raise KernelStartError(f"The kernel in job {self.job} exited at start (status {code}): see its log "
                                   f"(pai-magic logs {self.job}).")
        self._start_lease()
        self._phase("ready", f"kernel ready in job {self.job} ({time.monotonic() - started:.1f}s)")
        assert self.forwarder is not None
        local = dict(connection)
        local.update(ip="127.0.0.1", transport="tcp")
        local.update(dict(zip(PORT_NAMES, self.forwarder.local_ports)))
        return local

    # -- lease -------------------------------------------------------------------------------
    def _start_lease(self) -> None:
        if self._lease_thread is not None and self._lease_thread.is_alive():
            return
        self._lease_stop.clear()
        self._lease_thread = threading.Thread(target=self._renew_loop, name="pai-kernel-lease", daemon=True)
        self._lease_thread.start()

    def _renew_loop(self) -> None:
        every = max(1.0, self.settings.lease_seconds / 4)
        count = 0
        while not self._lease_stop.is_set():
            count += 1
            try:
                self._write("lease", str(count).encode(), 0o600)
            except (PaiError, OSError, EOFError) as exc:
                log.debug("lease renewal failed (retrying): %s", exc)
            except Exception as exc:  # paramiko's SSHException on a dropped link
                log.debug("lease renewal failed (retrying): %s", exc)
            self._lease_stop.wait(every)

    # -- running -----------------------------------------------------------------------------
    def _end_reason(self, detail: JobDetail) -> str:
        from pai_magic.core.jobs import task_reason

        why = task_reason(self.client, str(self.job), detail) if detail.state != "STOPPED" else ""
        if not why:
            lines = (detail.diagnostics or "").strip().splitlines()
            why = lines[0][:200] if lines else ""
        extra = f": {why}" if why else ""
        if detail.state == "STOPPED" and not self.stopping:
            return (f"Job {self.job} was STOPPED outside Jupyter (portal or CLI){extra}; the kernel is dead: "
                    "start a new kernel.")
        return f"Job {self.job} ended {detail.state} (exit code {detail.exit_code}){extra}; start a new kernel."

    def poll(self) -> int | None:
        """None while the kernel runs; an exit status once it or its job ended."""
        if self.job is None:
            return 0
        if self.ended:
            return 1
        try:
            detail = self._job_detail()
        except PaiError as exc:
            log.debug("poll: job detail failed (assuming alive): %s", exc)
            return None
        if detail.terminal:
            self.ended = self._end_reason(detail)
            self._lease_stop.set()
            self._close_link()
            return 1
        try:
            assert self.forwarder is not None
            if not self.forwarder.ensure_connected():
                try:  # a link that died without a word (no RST) looks active: one bounded round trip
                    self.forwarder.session().probe()
                except PaiError:
                    self.forwarder.drop()
                    self.forwarder.ensure_connected()
            code = self.kernel_exit()
        except Exception as exc:  # a link that is down now is retried at the next poll
            log.warning("pai-magic kernel: SSH link to job %s is down (%s); retrying", self.job, exc)
            return None
        return code

    def kernel_exit(self) -> int | None:
        gen = self.generation
        if gen and self._exists(f"kernel-{gen}.exit"):
            try:
                return int(self._read(f"kernel-{gen}.exit").strip() or 1)
            except ValueError:
                return 1
        return None

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.ended or self.job is None:
                return 1 if self.ended else 0
            try:
                code = self.kernel_exit()
            except Exception:
                code = None
            if code is not None:
                return code
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(FILE_POLL)

    def signal(self, signum: int) -> None:
        if self.ended or not self.generation:
            return
        self._write(f"signal-{self.generation}-{int(signum)}", b"", 0o600)

    # -- end ---------------------------------------------------------------------------------
    def _close_link(self) -> None:
        fwd, self.forwarder = self.forwarder, None
        if fwd is not None:
            fwd.close()

    def stop(self) -> None:
        """Stop the job (shutdown, culling, a failed start); the lease ends it if this fails."""
        self._lease_stop.set()
        if self.job is None:
            return
        self.stopping = True
        try:
            current = self._job_detail()
            if not current.terminal:
                self.client.stop(self.job)
            self._phase("stopped", f"stopped job {self.job}")
        except PaiError as exc:
            log.warning("pai-magic kernel: could not stop job %s (%s); asking its supervisor to end it",
                        self.job, exc)
            try:
                self._write("stop", b"", 0o600)
            except Exception:
                pass
        finally:
            self.ended = self.ended or f"Job {self.job} was stopped."
            self._close_link()
            try:
                from pai_magic.core.ssh.known_hosts import forget_job_keys

                forget_job_keys(f"{self.user}~{self.job}")
            except Exception:
                pass
