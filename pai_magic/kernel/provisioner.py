"""The jupyter_client kernel provisioner: a kernelspec's kernel runs inside an OpenPAI job.

A kernelspec selects it with ``metadata.kernel_provisioner.provisioner_name = "pai-magic"``
(entry point group ``jupyter_client.kernel_provisioners``); its ``config`` (image, resources,
profile, ...) arrives as this class's traits. The work is done by
:class:`pai_magic.kernel.job.KernelJob` in worker threads, so the Jupyter server's event loop
never waits on HTTP or SSH.

Lifecycle as jupyter_client drives it: ``pre_launch`` (CurveZMQ keys), ``launch_kernel``
(submit the job the first time, then start a kernel generation in it), ``poll`` every 3 s from
the restarter (job state from the REST API, the kernel's exit status, the SSH link
re-established when it dropped), ``kill``/``terminate``/``send_signal`` (files the supervisor
acts on), ``cleanup(restart=True)`` keeps the job for the restart, ``cleanup()`` stops it.

Each start's phases go to the server log and to :data:`pai_magic.kernel.phases.STARTS`, which
the server extension serves to JupyterLab (a notification per start: a cluster can take
minutes to schedule the job and pull its image while JupyterLab only says "Starting").
"""
from __future__ import annotations

import asyncio
import atexit
import os
import threading
from typing import Any, Callable

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from tornado.web import HTTPError
from traitlets import Float, Int, List, Unicode

from pai_magic.core.errors import PaiError

from pai_magic.kernel.job import KernelStartCancelled
from pai_magic.kernel.phases import STARTS
from pai_magic.kernel.spec import DEFAULT_LEASE_SECONDS, DEFAULT_PYTHON, DEFAULT_START_TIMEOUT, KernelSettings


class KernelStartFailed(HTTPError):
    """A start that cannot succeed (no ipykernel in the image, the job ended, a timeout).

    A tornado ``HTTPError`` because that is the only exception whose message the Jupyter
    server passes on to the frontend (JupyterLab's "Error starting kernel" dialog); anything
    else becomes "Unhandled error". Other frontends see the same one line in ``str()``.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message)
        self.message = message

    @property
    def log_message(self) -> str:
        """The line as is: jupyter_server answers ``log_message`` verbatim, and tornado's own
        (%-escaping) property doubled each ``%`` there ("%%pai_login" in JupyterLab's dialog).
        Tornado logs through ``get_message()``, which needs no escaping without args."""
        return self.message

    def __str__(self) -> str:
        return self.message


#: Kernel starts under way in this process: their threads and jobs (see _start_in_thread).
_IN_FLIGHT: dict[threading.Thread, Any] = {}
_IN_FLIGHT_LOCK = threading.Lock()
#: Seconds the exiting process gives each start to stop its job before stopping it directly.
EXIT_GRACE = 10.0


async def _start_in_thread(job: Any, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()`` (a kernel start: minutes on a busy cluster) in a DAEMON thread.

    Why not the loop's executor: its threads are joined when the process exits, so stopping
    the Jupyter server during a start hung until the start ended (up to ``start_timeout``) and
    then left a kernel nobody would use RUNNING until its lease ran out. A daemon thread lets
    the server exit; the exit hook (:func:`_cancel_starts_at_exit`) cancels the start, whose
    thread stops the job it submitted. A cancelled await (a shutdown of a starting kernel)
    cancels the start the same way, and a start that finished anyway is stopped.
    """
    # The exit hook must run before paramiko's own, which closes every SSH transport (atexit
    # runs the last registered first): import paramiko, then register the hook again.
    import paramiko  # noqa: F401

    atexit.unregister(_cancel_starts_at_exit)
    atexit.register(_cancel_starts_at_exit)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        result: Any
        try:
            result, ok = fn(), True
        except BaseException as exc:  # delivered to the awaiting coroutine
            result, ok = exc, False
        finally:
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.pop(threading.current_thread(), None)
        if future.cancelled() and ok:  # nobody awaits the kernel any more
            job.stop()
            return
        try:
            loop.call_soon_threadsafe(deliver, ok, result)
        except RuntimeError:  # the loop is closed: the server is gone
            if ok:
                job.stop()

    thread = threading.Thread(target=run, name="pai-kernel-start", daemon=True)
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT[thread] = job
    thread.start()
    return await future


def _cancel_starts_at_exit() -> None:
    """The Jupyter server exits during kernel starts: cancel them so each stops its job."""
    with _IN_FLIGHT_LOCK:
        starts = list(_IN_FLIGHT.items())
    for _, job in starts:
        job.cancel()
    for thread, job in starts:
        thread.join(EXIT_GRACE)
        if thread.is_alive() and getattr(job, "job", None) and not getattr(job, "stopping", False):
            try:
                job.stop()
            except Exception:  # exiting: the lease ends the job if this fails
                pass


class PaiKernelProvisioner(KernelProvisionerBase):
    """Start, watch and stop a kernel that runs in an OpenPAI job (see the module docstring)."""

    profile = Unicode("", help="pai_magic profile (cluster, user; its token stays in the profile file)")
    image = Unicode("", help="Docker image the kernel runs in; its Python needs ipykernel")
    gpu = Int(1)
    cpu = Int(4)
    memory_mb = Int(16384)
    virtual_cluster = Unicode("")
    storages = List(Unicode())
    python = Unicode(DEFAULT_PYTHON, help="the image's Python command")
    lease_seconds = Float(DEFAULT_LEASE_SECONDS,
                          help="the job ends this long after the Jupyter server stops renewing its lease")
    start_timeout = Float(DEFAULT_START_TIMEOUT, help="seconds to wait for the job to run and the kernel to listen")

    _job: Any = None
    _session_path: str | None = None
    _end_reported = False

    # -- helpers -----------------------------------------------------------------------------
    def _kernel_job(self) -> Any:
        if self._job is None:
            from pai_magic.kernel.job import KernelJob

            settings = KernelSettings(image=self.image, profile=self.profile, gpu=self.gpu, cpu=self.cpu,
                                      memory_mb=self.memory_mb, virtual_cluster=self.virtual_cluster,
                                      storages=list(self.storages), python=self.python,
                                      lease_seconds=self.lease_seconds, start_timeout=self.start_timeout)
            name = getattr(self.parent, "kernel_name", "") or "python"
            self._job = KernelJob(settings, kernel_name=name, on_phase=self.log.info, on_step=self._step)
        return self._job

    def _step(self, key: str, text: str) -> None:
        """A phase of the current start, for the frontend (called from worker threads)."""
        STARTS.phase(self.kernel_id, key, text, job=getattr(self._job, "job", None))

    def _relative_to_root(self, path: str) -> str:
        """The session's path as JupyterLab names it (relative to the server's root_dir)."""
        root = getattr(getattr(self.parent, "parent", None), "root_dir", None)
        if isinstance(root, str) and root:
            try:
                rel = os.path.relpath(os.path.realpath(path), os.path.realpath(os.path.expanduser(root)))
            except ValueError:
                rel = ""
            if rel and not rel.startswith(".."):
                return rel.replace(os.sep, "/")
        return os.path.basename(path)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- KernelProvisionerBase ----------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self._job is not None and self._job.job is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Give the kernel CurveZMQ keys (the task's loopback is shared with other jobs on a
        node with host networking) and build the command for the record."""
        km: Any = self.parent
        import zmq

        if km is not None and getattr(km, "curve_publickey", None) is None and zmq.has("curve"):
            km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()
        kwargs.pop("transport_encryption", None)
        # jupyter_server's session manager names the notebook in the kernel's environment
        session = (kwargs.get("env") or {}).get("JPY_SESSION_NAME")
        if isinstance(session, str) and session:
            self._session_path = self._relative_to_root(session)
        extra = kwargs.pop("extra_arguments", [])
        cmd = km.format_kernel_cmd(extra_arguments=extra) if km is not None else list(self.kernel_spec.argv)
        return await super().pre_launch(cmd=cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        km: Any = self.parent
        session = km.session
        connection: dict[str, Any] = {"key": session.key.decode(), "signature_scheme": session.signature_scheme,
                                      "transport": "tcp", "kernel_name": getattr(km, "kernel_name", "")}
        if getattr(km, "curve_publickey", None) is not None:
            connection["curve_publickey"] = km.curve_publickey.decode()
            connection["curve_secretkey"] = km.curve_secretkey.decode()
        job = self._kernel_job()
        restart = job.job is not None and not job.ended
        STARTS.begin(self.kernel_id, kernel_name=getattr(km, "kernel_name", "") or "",
                     display_name=self.kernel_spec.display_name, path=self._session_path,
                     restart=restart, job=job.job)
        try:
            job.allow_start()
            local: Any = await _start_in_thread(job, lambda: job.start_kernel(connection, timeout=self.start_timeout))
        except KernelStartCancelled:
            STARTS.failed(self.kernel_id, "The kernel start was cancelled (the Jupyter server is stopping).")
            raise KernelStartFailed("The kernel start was cancelled (the Jupyter server is stopping).") from None
        except PaiError as exc:
            self.log.error("pai-magic kernel: %s", exc.message)
            STARTS.failed(self.kernel_id, exc.message)
            raise KernelStartFailed(exc.message) from None
        except asyncio.CancelledError:
            job.cancel()  # its thread stops the job it submitted (see _start_in_thread)
            STARTS.failed(self.kernel_id, "The kernel start was cancelled (the kernel was shut down).")
            raise
        except Exception as exc:
            # not a message meant for the user (it may say anything): the log has the detail
            STARTS.failed(self.kernel_id, f"The kernel did not start ({type(exc).__name__}): "
                                          "see the Jupyter server log.")
            raise
        STARTS.ready(self.kernel_id, f"kernel ready in job {job.job}")
        local["key"] = session.key
        self.connection_info = local
        return local

    async def poll(self) -> int | None:
        if self._job is None:
            return 0
        code = await self._run(self._job.poll)
        if code is not None and self._job.ended and not self._job.stopping:
            # The job ended from elsewhere (portal, CLI, cluster): restarting would start a new
            # job the person did not ask for, so the kernel is reported dead with the reason.
            self.log.warning("%s", self._job.ended)
            if not self._end_reported:  # the notebook's page says why (poll goes on until removed)
                self._end_reported = True
                STARTS.ended(self.kernel_id, self._job.ended, kernel_name=getattr(self.parent, "kernel_name", "") or "",
                             display_name=self.kernel_spec.display_name, path=self._session_path,
                             job=self._job.job)
            if hasattr(self.parent, "reason"):
                parent: Any = self.parent
                parent.reason = self._job.ended
            restarter = getattr(self.parent, "_restarter", None)
            if restarter is not None:
                restarter.restart_limit = 0
        return code

    async def wait(self) -> int | None:
        if self._job is None:
            return 0
        return await self._run(self._job.wait)

    async def send_signal(self, signum: int) -> None:
        if self._job is not None:
            await self._run(self._job.signal, signum)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(9)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(15)

    async def cleanup(self, restart: bool = False) -> None:
        """A restart keeps the job (same task, same ports); anything else stops it."""
        if restart or self._job is None:
            return
        await self._run(self._job.stop)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return recommended

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return recommended

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        if self._job is not None:
            info.update(job=self._job.job, generation=self._job.generation)
        return info
