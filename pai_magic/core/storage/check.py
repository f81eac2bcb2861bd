"""Does an NFS server answer, and does it export the path a storage names?

Asked before mounting (and by ``--check``) because a kernel mount that cannot work fails
slowly or with a vague message. The probe runs in user space, so it needs neither root nor
an NFS client in the kernel: libnfs's ``nfs-ls`` really mounts the export (NFSv3 through the
portmapper, then NFSv4), which proves the path; without it only a TCP connection to the NFS
port is possible, and the answer says that the export itself was not verified.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass, field

from pai_magic.core.storage.nfs import parse_source

NFS_PORT = 2049
DEFAULT_TIMEOUT = 15.0
_WRONG_PATH = ("MNT3ERR_NOENT", "MNT3ERR_ACCES", "MNT3ERR_NOTDIR", "NFS4ERR_NOENT", "NFS4ERR_NOTDIR")
_REFUSED = ("NFS4ERR_ACCESS", "NFS4ERR_PERM", "NFS4ERR_WRONGSEC", "MNT3ERR_PERM")
_INSTALL_NFS_LS = "install libnfs-utils (apt-get install libnfs-utils) to verify it"


@dataclass
class CheckResult:
    """The probe's answer. ``verified`` is False when only the port could be tested."""

    server: str
    path: str
    ok: bool
    verified: bool
    method: str  # "nfs-ls v3", "nfs-ls v4" or "tcp"
    message: str
    exports: list[str] = field(default_factory=list)


def _host_for_url(server: str) -> str:
    return server if server.startswith("[") or ":" not in server else f"[{server}]"


def _nfs_ls(tool: str, url: str, timeout: float, *extra: str) -> tuple[int, str]:
    try:
        proc = subprocess.run([tool, *extra, url], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, f"no answer within {timeout:g} s"
    return proc.returncode, " ".join((proc.stderr + " " + proc.stdout).split()) if proc.returncode else proc.stdout


def list_exports(server: str, *, timeout: float = DEFAULT_TIMEOUT, nfs_ls: str | None = None) -> list[str]:
    """The paths an NFSv3 server exports (its MOUNT service's list); [] when unknown."""
    tool = nfs_ls or shutil.which("nfs-ls")
    if tool is None:
        return []
    host = _host_for_url(server)
    rc, out = _nfs_ls(tool, f"nfs://{host}", timeout, "-D")
    if rc != 0:
        return []
    prefix = f"nfs://{host}"
    return [line.strip()[len(prefix):] for line in out.splitlines() if line.strip().startswith(prefix)]


def tcp_probe(server: str, port: int = NFS_PORT, timeout: float = 5.0) -> str | None:
    """None when something accepts a TCP connection on ``port``, else why not."""
    host = server.strip("[]")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_export(source: str, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 nfs_ls: str | None = None) -> CheckResult:
    """Probe ``SERVER:/PATH``. Never raises for an unreachable server or a wrong path: the
    result's ``message`` is the one line a face prints, and ``ok`` tells success.

    ``port`` is the NFS port when it is not 2049 (NFSv3 finds its ports via the portmapper).
    """
    server, path = parse_source(source)
    tool = nfs_ls or shutil.which("nfs-ls")
    nfs_port = port or NFS_PORT
    if tool is None:
        why = tcp_probe(server, nfs_port, min(timeout, 5.0))
        if why is None:
            return CheckResult(server, path, True, False, "tcp",
                               f"{server} answers on the NFS port {nfs_port}, but pai_magic cannot verify the export "
                               f"{path} without nfs-ls: {_INSTALL_NFS_LS}.")
        return CheckResult(server, path, False, False, "tcp",
                           f"{server} does not answer on the NFS port {nfs_port} ({why}): check the address and "
                           f"your network (a VPN?), then retry.")

    host = _host_for_url(server)
    rc, out = _nfs_ls(tool, f"nfs://{host}{path}", timeout)
    if rc == 0:
        return CheckResult(server, path, True, True, "nfs-ls v3", f"{server} exports {path} (NFSv3 mount works).")
    # An NFSv4 pseudo path (ganesha's Pseudo, nfsd's fsid=0 root) is not a v3 export: try v4 too.
    query = "version=4" + (f"&nfsport={port}" if port else "")
    rc4, out4 = _nfs_ls(tool, f"nfs://{host}{path}?{query}", timeout)
    if rc4 == 0:
        return CheckResult(server, path, True, True, "nfs-ls v4", f"{server} exports {path} (NFSv4 mount works).")
    if any(code in out for code in _WRONG_PATH) or any(code in out4 for code in _WRONG_PATH):
        exports = list_exports(server, timeout=timeout, nfs_ls=tool)
        known = ", ".join(exports) if exports else "none listed"
        return CheckResult(server, path, False, True, "nfs-ls",
                           f"{server} answers but does not export {path} to this machine (its exports: {known}); "
                           f"fix the path.", exports)
    if any(code in out4 or code in out for code in _REFUSED):
        return CheckResult(server, path, False, True, "nfs-ls",
                           f"{server} refuses this machine for {path} (no permission): ask the cluster admin to "
                           f"allow your address in the export.")
    why = tcp_probe(server, nfs_port, min(timeout, 5.0))
    if why is not None:
        return CheckResult(server, path, False, False, "nfs-ls",
                           f"{server} does not answer on the NFS port {nfs_port} ({why}): check the address and "
                           f"your network (a VPN?), then retry.")
    detail = (out4 or out)[:160]
    return CheckResult(server, path, False, False, "nfs-ls",
                       f"{server} accepts connections on port {nfs_port} but the export {path} could not be read "
                       f"({detail}); ask the cluster admin whether it is exported to you.")
