"""Mount a cluster storage without root and without an NFS client: sshfs through a job.

A job container that mounts the storage already sees it; FUSE lets an ordinary user mount
that folder locally over SSH. pai_magic's own SSH layer first connects with paramiko (trust on
first use of the task's host key, stored under the task's alias in pai_magic's known_hosts),
then sshfs runs with the same key, the same known_hosts and ``HostKeyAlias``, ``BatchMode``
and ``StrictHostKeyChecking=yes``: nothing can prompt, and a key that changed is refused.
When no job is named, a small keep-alive helper job that mounts the storage is submitted,
recorded with the mount, and stopped when the share is unmounted.
"""
from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, overload

from pai_magic.core.errors import (InvalidInputError, MountError, NotFoundError, PaiError, PaiTimeoutError,
                                   UnreachableError)
from pai_magic.core.storage import state
from pai_magic.core.storage.mounttable import find_mount, normalize_mountpoint
from pai_magic.core.storage.nfs import MountResult, find_tool, mkdir_argv, run_argv

if TYPE_CHECKING:  # the SSH layer (and paramiko) load only when a rootless mount runs
    from pai_magic.core.models import JobDetail
    from pai_magic.core.ssh.connect import SshSession, SshTarget
    from pai_magic.core.ssh.keys import SshKey

HELPER_IMAGE = "ubuntu:22.04"
HELPER_STEM = "pai-mount"
DEFAULT_START_TIMEOUT = 300.0
DEFAULT_MOUNT_TIMEOUT = 60.0


def storage_env_name(name: str) -> str:
    """The variable a task reads when the storage is not at its mountPath (embedded backend)."""
    import re

    return "PAI_STORAGE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_PATH"


@dataclass(frozen=True)
class SshfsEndpoint:
    """Everything sshfs needs to reach a folder inside a task, with pai_magic's trust."""

    host: str
    port: int
    user: str
    remote_path: str
    key_path: str
    known_hosts: str
    host_key_alias: str


def _fuse_escape(value: str) -> str:
    """FUSE splits ``-o`` values at commas; a literal comma (or backslash) is escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def sshfs_argv(ep: SshfsEndpoint, mountpoint: str, *, extra_options: tuple[str, ...] = (),
               ssh_log: str | None = None) -> list[str]:
    """``ssh_log``: sshfs swallows ssh's stderr, so ssh writes it to this file (``-E``)."""
    host = f"[{ep.host}]" if ":" in ep.host and not ep.host.startswith("[") else ep.host
    options = [
        f"IdentityFile={_fuse_escape(ep.key_path)}",
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={_fuse_escape(ep.known_hosts)}",
        "GlobalKnownHostsFile=/dev/null",
        f"HostKeyAlias={_fuse_escape(ep.host_key_alias)}",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "PasswordAuthentication=no",
        "ConnectTimeout=15",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        "reconnect",
        *extra_options,
    ]
    if ssh_log and not any(ch.isspace() or ch == "," for ch in ssh_log):
        options.append(f"ssh_command=ssh -E {ssh_log}")
    argv = ["sshfs", f"{ep.user}@{host}:{ep.remote_path}", mountpoint, "-p", str(ep.port)]
    for opt in options:
        argv += ["-o", opt]
    return argv


def explain_sshfs_failure(stderr: str, mountpoint: str, where: str) -> str:
    text = " ".join((stderr or "").split())
    low = text.lower()
    if "fuse: device not found" in low or "/dev/fuse" in low:
        return ("This machine has no FUSE (/dev/fuse is missing), so sshfs cannot mount: load the fuse module "
                "or copy files with --sync instead.")
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return (f"The SSH host key of {where} does not match the one pai_magic recorded for this job: refusing; "
                f"if the task was restarted, mount again.")
    if "permission denied" in low and "publickey" in low:
        return (f"{where} refused pai_magic's SSH key: the job must be submitted with your public key "
                f"(--ssh) so its container accepts it.")
    if "connection refused" in low or "timed out" in low or "no route" in low:
        return f"sshfs cannot reach {where} ({text[:120]}): check that the job is still RUNNING."
    if "no such file" in low:
        return f"The folder to mount does not exist in {where} ({text[:120]}): check the storage's mount path."
    if "not empty" in low or "nonempty" in low:
        return f"{mountpoint} is not empty: choose an empty folder to mount on."
    if "permitted" in low or "fusermount" in low:
        return (f"FUSE refused to mount on {mountpoint} ({text[:120]}): use a folder you own, or ask for "
                f"'user_allow_other' in /etc/fuse.conf if you passed allow_other.")
    return f"sshfs could not mount {where} on {mountpoint} ({text[:200] or 'no message'})."


def mount_sshfs(ep: SshfsEndpoint, mountpoint: str, *, timeout: float = DEFAULT_MOUNT_TIMEOUT,
                where: str = "") -> list[list[str]]:
    """Create the mount point if needed, run sshfs, verify the mount; returns the commands run.

    Raises MountError with one sentence built from sshfs's and ssh's own messages.
    """
    import tempfile

    require_sshfs()
    if not Path("/dev/fuse").exists():
        raise MountError("This machine has no FUSE (/dev/fuse is missing), so sshfs cannot mount: use --sync to "
                         "copy files instead.")
    mp = normalize_mountpoint(mountpoint)
    where = where or f"{ep.host}:{ep.port}"
    commands: list[list[str]] = []
    mk = mkdir_argv(mp)
    if mk:
        commands.append(mk)
        proc = run_argv(mk, timeout, "create the mount point")
        if proc.returncode != 0:
            raise MountError(f"Could not create {mp} ({(proc.stderr or '').strip()[:120]}): choose a folder you may write.")
    with tempfile.TemporaryDirectory(prefix="pai-sshfs-") as logdir:
        log = Path(logdir) / "ssh.log"
        argv = sshfs_argv(ep, mp, ssh_log=str(log))
        commands.append(argv)
        proc = run_argv(argv, timeout, "mount")
        if proc.returncode != 0:
            ssh_text = log.read_text(errors="replace") if log.exists() else ""
            raise MountError(explain_sshfs_failure(f"{proc.stderr or proc.stdout} {ssh_text}", mp, where))
    entry = find_mount(mp)
    if entry is None or not entry.is_sshfs:
        raise MountError(f"sshfs reported success but {mp} is not mounted; run `{shlex.join(commands[-1])}` "
                         f"in a terminal to see why.")
    return commands


def require_sshfs() -> str:
    tool = find_tool("sshfs")
    if tool is None:
        raise MountError("sshfs is not installed, so the rootless mount cannot work: install it "
                         "(apt-get install sshfs / yum install fuse-sshfs) or use --sync to copy files.")
    return tool


# -- reaching a job's task ------------------------------------------------------------------

def task_target(client: Any, job: str, *, role: str | None = None, index: int = 0) -> tuple[SshTarget, JobDetail]:
    """The SSH target of a RUNNING task of ``job`` (``name`` or ``user~name``), as the SSH layer
    names it (its known_hosts alias includes the task's attempt)."""
    from pai_magic.core.ssh.tasks import task_target as ssh_task_target

    detail = client.get_job(job)
    if detail.state != "RUNNING":
        raise InvalidInputError(f"Job {detail.full_name} is {detail.state}, not RUNNING: a storage can only be "
                                f"mounted through a running job.")
    return ssh_task_target(detail, role, index), detail


@overload
def resolve_key(client: Any, key_path: str | None, *, create: Literal[True] = ...) -> SshKey: ...
@overload
def resolve_key(client: Any, key_path: str | None, *, create: bool) -> SshKey | None: ...


def resolve_key(client: Any, key_path: str | None, *, create: bool = True) -> SshKey | None:
    """The key pai_magic connects with: the given path, the profile's, the user's, or ours."""
    from pai_magic.core.ssh.keys import ensure_key, find_key

    configured = key_path or getattr(getattr(client, "profile", None), "ssh_key", None)
    return ensure_key(configured) if create else find_key(configured)


def _job_mount_path(client: Any, job: str, storage: str | None) -> tuple[str, str]:
    """(storage name, mountPath) of a storage the job mounts, from its config."""
    config = client.job_config(job)
    entries = ((config.get("extras") or {}).get("storages") or []) if isinstance(config, dict) else []
    mounts = [(str(e["name"]), str(e.get("mountPath") or f"/mnt/{e['name']}")) for e in entries
              if isinstance(e, dict) and e.get("name")]
    if storage:
        for name, path in mounts:
            if name == storage:
                return name, path
        listed = ", ".join(n for n, _ in mounts) or "none"
        raise NotFoundError(f"Job {job} does not mount storage {storage} (it mounts: {listed}): name a job that "
                            f"does, or omit --via-job to start a helper job.")
    if not mounts:
        raise NotFoundError(f"Job {job} mounts no storage: name a storage (--storage NAME) or a job that mounts one.")
    return mounts[0]


def _remote_storage_path(session: Any, storage: str, mount_path: str) -> str:
    """Where the storage really is inside the task: its mountPath, or the folder the
    embedded backend names in ``PAI_STORAGE_<NAME>_PATH`` when it could not use mountPath."""
    from pai_magic.core.ssh.exec import run_capture

    var = storage_env_name(storage)
    cmd = f'p="${{{var}:-{mount_path}}}"; if [ -d "$p" ]; then cd "$p" && pwd -P; else exit 3; fi'
    result = run_capture(session, cmd, timeout=30)
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.exit_status != 0 or not path.startswith("/"):
        raise NotFoundError(f"Storage {storage} is not mounted at {mount_path} inside the job: check the job's "
                            f"extras.storages.")
    return path


# -- helper job -----------------------------------------------------------------------------

def helper_protocol(storage: str, public_key: str, *, image: str = HELPER_IMAGE,
                    virtual_cluster: str = "default") -> dict[str, Any]:
    """A one-task keep-alive job that mounts ``storage`` and accepts ``public_key`` over SSH."""
    from pai_magic.core.protocol.build import JobSpec, build_protocol

    spec = JobSpec(name=f"{HELPER_STEM}-{storage}", image=image, keep_alive=True,
                   commands=[f"echo 'pai_magic: keeps storage {storage} reachable for sshfs; stopped at unmount'"],
                   cpu=1, memory_mb=512, gpu=0, storages=[(storage, None)], ssh_public_key=public_key,
                   virtual_cluster=virtual_cluster, description="pai_magic storage helper (rootless mount)")
    return build_protocol(spec)


def wait_for_ssh(client: Any, job: str, key: Any, *, timeout: float,
                 on_status: Callable[[str], None] | None = None) -> tuple[SshSession, SshTarget, JobDetail]:
    """Wait until the job RUNNING with an SSH port that answers; return (session, target, detail)."""
    from pai_magic.core.ssh.connect import connect

    deadline = time.monotonic() + timeout
    delay = 0.3
    last = "WAITING"
    while True:
        detail = client.get_job(job)
        last = detail.state
        if detail.terminal:
            raise MountError(f"The helper job {detail.full_name} ended ({detail.state}) before SSH came up: "
                             f"look at its logs (pai-magic logs {detail.name}).")
        if detail.state == "RUNNING":
            try:
                target, detail = task_target(client, job)
                return connect(target, key), target, detail
            except (InvalidInputError, UnreachableError, PaiTimeoutError):
                pass  # not ready yet: no port, or sshd still starting
        if on_status:
            on_status(last)
        if time.monotonic() + delay > deadline:
            raise PaiTimeoutError(f"Job {job} is still {last} with no SSH after {timeout:g} s: the cluster may be "
                                  f"busy; try again later or mount through a job of yours (--via-job).")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def open_storage_session(client: Any, job: str, key: Any, storage: str, mount_path: str, *,
                         wait_timeout: float | None = None, on_status: Callable[[str], None] | None = None,
                         attempts: int = 3) -> tuple[SshSession, SshTarget, JobDetail, str]:
    """Connect to the job's task and find the storage in it: (session, target, detail, path).

    ``wait_timeout`` first waits for a just-submitted job. A connection that drops right after
    it was opened (a task still settling) is retried: the probe only reads a path.
    """
    import paramiko

    from pai_magic.core.ssh.connect import connect

    last_exc: BaseException | None = None
    for attempt in range(max(1, attempts)):
        session = None
        try:
            if wait_timeout is not None:
                session, target, detail = wait_for_ssh(client, job, key, timeout=wait_timeout, on_status=on_status)
            else:
                target, detail = task_target(client, job)
                session = connect(target, key)
            return session, target, detail, _remote_storage_path(session, storage, mount_path)
        except (paramiko.SSHException, EOFError, OSError, UnreachableError) as exc:
            last_exc = exc
            if session is not None:
                session.close()
            time.sleep(0.5 * (attempt + 1))
        except BaseException:
            if session is not None:
                session.close()
            raise
    raise UnreachableError(f"The SSH connection to job {job} kept dropping ({last_exc}): check that the job is "
                           f"still RUNNING, then retry.")


# -- mount / unmount ------------------------------------------------------------------------

def mount_via_job(client: Any, mountpoint: str, *, storage: str | None = None, job: str | None = None,
                  key_path: str | None = None, subpath: str = "", dry_run: bool = False,
                  profile: str | None = None, image: str = HELPER_IMAGE,
                  start_timeout: float = DEFAULT_START_TIMEOUT, timeout: float = DEFAULT_MOUNT_TIMEOUT,
                  on_status: Callable[[str], None] | None = None) -> MountResult:
    """Mount ``storage`` (through ``job``, or a helper job started here) on ``mountpoint`` with sshfs.

    ``subpath`` mounts a folder inside the storage (e.g. the user's own). The helper job is
    stopped again if anything fails after it was submitted.
    """
    from pai_magic.core.ssh.known_hosts import KnownHosts

    if not storage and not job:
        raise InvalidInputError("Name a storage (--storage NAME) or a job that mounts one (--via-job JOB).")
    mp = normalize_mountpoint(mountpoint)
    existing = find_mount(mp)
    if existing is not None and not dry_run:
        rec = state.get_record(mp)
        if rec is not None and rec.kind == "sshfs" and (storage is None or rec.storage == storage):
            return MountResult(mp, existing.source, "sshfs", already=True, job=rec.job,
                               message=f"{mp} is already mounted ({existing.source}); nothing to do.")
        raise MountError(f"{mp} already has {existing.source} ({existing.fstype}) mounted on it: unmount it first "
                         f"(%pai_umount {shlex.quote(mp)}) or choose another folder.")
    key = resolve_key(client, key_path, create=not dry_run)
    known = KnownHosts()
    if dry_run:
        where = job or f"<helper job for {storage}>"
        ep = SshfsEndpoint("<task ip>", 0, "root", f"<{storage or 'storage'} in {where}>{('/' + subpath) if subpath else ''}",
                           str(key.private_path) if key else "<pai_magic key>", str(known.path), f"<alias of {where}>")
        commands = [c for c in [mkdir_argv(mp)] if c] + [sshfs_argv(ep, mp)]
        steps = "" if job else "submit a helper job mounting the storage, wait for its SSH, then "
        return MountResult(mp, ep.remote_path, "sshfs", commands=commands, dry_run=True, job=job,
                           message=f"Would {steps}run {len(commands)} command(s).")
    require_sshfs()
    assert key is not None  # not a dry run: resolve_key created it
    helper = job is None
    job_name = job
    session = None
    try:
        if helper:
            from pai_magic.core.jobs import submit_job

            vc = getattr(getattr(client, "profile", None), "virtual_cluster", "default") or "default"
            job_name = submit_job(client, helper_protocol(str(storage), key.public_line, image=image,
                                                          virtual_cluster=vc))
            if on_status:
                on_status(f"submitted helper job {job_name}")
            storage_name, mount_path = str(storage), f"/mnt/{storage}"
            session, target, detail, remote = open_storage_session(client, job_name, key, storage_name, mount_path,
                                                                   wait_timeout=start_timeout, on_status=on_status)
        else:
            storage_name, mount_path = _job_mount_path(client, str(job_name), storage)
            session, target, detail, remote = open_storage_session(client, str(job_name), key, storage_name,
                                                                   mount_path)
        if subpath:
            remote = remote.rstrip("/") + "/" + subpath.strip("/")
            from pai_magic.core.ssh.exec import run_capture

            made = run_capture(session, f"mkdir -p {shlex.quote(remote)} && chmod 700 {shlex.quote(remote)}", timeout=30)
            if made.exit_status != 0:
                raise MountError(f"Could not create {remote} inside the job ({made.stderr.strip()[:120]}).")
        ep = SshfsEndpoint(target.host, target.port, target.user, remote, str(key.private_path), str(known.path),
                           target.host_key_alias)
        commands = mount_sshfs(ep, mp, timeout=timeout, where=target.where)
        entry = find_mount(mp)
        assert entry is not None
        state.add_record(state.MountRecord(mountpoint=mp, kind="sshfs", source=entry.source, storage=storage_name,
                                           job=detail.full_name, helper_job=helper, profile=profile))
        via = f"helper job {detail.full_name}" if helper else f"job {detail.full_name}"
        return MountResult(mp, entry.source, "sshfs", commands=commands, job=detail.full_name,
                           message=f"Mounted storage {storage_name} on {mp} through {via} (sshfs).")
    except BaseException:
        if helper and job_name:
            _stop_quietly(client, job_name)
        raise
    finally:
        if session is not None:
            session.close()


def _stop_quietly(client: Any, job: str) -> None:
    try:
        client.stop(job)
    except PaiError:
        pass
    try:
        from pai_magic.core.ssh.known_hosts import forget_job_keys

        detail_user = getattr(client, "user", None)
        full = job if "~" in job else f"{detail_user}~{job}"
        forget_job_keys(full)
    except Exception:
        pass


def unmount(mountpoint: str, *, client: Any | None = None, client_factory: Callable[[str | None], Any] | None = None,
            dry_run: bool = False, timeout: float = DEFAULT_MOUNT_TIMEOUT) -> MountResult:
    """Unmount any share pai_magic can (sshfs or kernel NFS); stop the helper job of an sshfs
    mount that pai_magic started. ``client_factory(profile_name)`` builds a client when
    none is given and a helper job must be stopped."""
    from pai_magic.core.storage import nfs

    mp = normalize_mountpoint(mountpoint)
    record = state.get_record(mp)
    result = nfs.umount(mp, dry_run=dry_run, timeout=timeout)
    if dry_run or record is None or not record.helper_job or not record.job:
        return result
    if client is None and client_factory is not None:
        client = client_factory(record.profile)
    if client is None:
        from pai_magic.core.client import PaiClient
        from pai_magic.core.profiles import load_profile

        client = PaiClient(load_profile(record.profile))
    user, _, name = record.job.partition("~")
    try:
        client.stop(name, user or None)
        result.message += f" Stopped helper job {record.job}."
    except NotFoundError:
        pass
    except PaiError as exc:
        result.message += f" The helper job {record.job} could not be stopped ({exc}): stop it with `pai-magic stop {name}`."
    try:
        from pai_magic.core.ssh.known_hosts import forget_job_keys

        forget_job_keys(record.job)
    except Exception:
        pass
    result.job = record.job
    return result


def fuse_available() -> bool:
    return Path("/dev/fuse").exists() and (shutil.which("fusermount3") or shutil.which("fusermount")) is not None
