"""Open an authenticated SSH connection to a task, with every wait bounded.

Why not ``paramiko.SSHClient``: its host-key check is keyed by ``[ip]:port`` and tempts with
``AutoAddPolicy``; here the check goes through :class:`KnownHosts` under the task's alias
(trust on first use per job). Why the explicit timeouts and the probe: paramiko's keepalive
sends requests that want no reply, so it never notices a peer that vanished; a bounded
round trip (opening a throw-away channel) does.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pai_magic.core.errors import (AuthError, PaiError, PaiTimeoutError, UnreachableError)
from pai_magic.core.ssh.keys import SshKey, load_private_key
from pai_magic.core.ssh.known_hosts import KnownHosts

if TYPE_CHECKING:  # paramiko loads lazily: %pai_* and the CLI start fast
    import paramiko

# paramiko logs a dropped connection ("Socket exception: Connection reset by peer") at ERROR;
# with no handler configured Python's last-resort handler prints it into the notebook cell.
# We turn those faults into one-line PaiErrors ourselves; an application that configures
# logging still sees paramiko's records through propagation.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: Fastest first: AES-GCM needs no separate MAC and runs on AES-NI inside ``cryptography``.
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
#: Known-hosts key type -> host key algorithms that produce it.
_KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
}


@dataclass(frozen=True)
class SshTarget:
    """Where to connect and under which known_hosts alias its host key is checked."""

    host: str
    port: int
    host_key_alias: str
    user: str = "root"
    label: str = ""  # "task worker/0 of job alice~train" for messages

    @property
    def where(self) -> str:
        return f"{self.label} ({self.host}:{self.port})" if self.label else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    """Timeouts (seconds) and transport tuning; defaults suit a cluster and loopback alike."""

    connect_timeout: float = 10.0
    banner_timeout: float = 15.0
    auth_timeout: float = 20.0
    io_timeout: float = 60.0        # longest single wait for data or window during a transfer
    probe_interval: float = 15.0    # silence on an exec channel after which the peer is probed
    probe_timeout: float = 10.0
    ciphers: tuple[str, ...] = FAST_CIPHERS
    window_size: int = 16 * 1024 * 1024
    max_packet_size: int = 32768
    tcp_keepalive: bool = True


def _tune_socket(sock: socket.socket, keepalive: bool) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
                except OSError:
                    pass
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        except OSError:
            pass


def open_socket(host: str, port: int, timeout: float, where: str = "") -> socket.socket:
    """A connected TCP socket, or one line saying why not (refused, timed out, no such host)."""
    where = where or f"{host}:{port}"
    try:
        return socket.create_connection((host, int(port)), timeout=timeout)
    except socket.gaierror:
        raise UnreachableError(f"Cannot resolve {host} for SSH to {where}: check the task's IP "
                               "(pai-magic ssh-info NAME).") from None
    except socket.timeout:
        raise PaiTimeoutError(f"SSH connect to {where} timed out after {timeout:g}s: check the task "
                              "is RUNNING and its ssh port is reachable from here.") from None
    except ConnectionRefusedError:
        raise UnreachableError(f"SSH connection to {where} refused: nothing listens there; check the "
                               "task is RUNNING and the job has the ssh plugin (--ssh).") from None
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise UnreachableError(f"Cannot reach {where} for SSH ({reason}): check the network path "
                               "to the task.") from None


class SshSession:
    """One authenticated connection; opens exec channels and one shared SFTP client."""

    def __init__(self, transport: paramiko.Transport, target: SshTarget, options: SshOptions) -> None:
        self.transport = transport
        self.target = target
        self.options = options
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self._remote_caps: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SshSession({self.target.user}@{self.target.where}, active={self.active})"

    @property
    def active(self) -> bool:
        return bool(self.transport is not None and self.transport.is_active())

    def _dead(self, what: str) -> PaiError:
        return UnreachableError(f"SSH connection to {self.target.where} was lost during {what}: check "
                                "the task is still RUNNING and retry.")

    def open_channel(self) -> paramiko.Channel:
        """A new session channel; bounded by the io timeout."""
        import paramiko

        if not self.active:
            raise self._dead("opening a channel")
        try:
            chan = self.transport.open_session(timeout=self.options.io_timeout,
                                               window_size=self.options.window_size,
                                               max_packet_size=self.options.max_packet_size)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if "Timeout" in str(exc):
                raise PaiTimeoutError(f"{self.target.where} did not open an SSH channel within "
                                      f"{self.options.io_timeout:g}s: the task may be overloaded or gone.") from None
            raise self._dead("opening a channel") from None
        chan.settimeout(self.options.io_timeout)
        return chan

    def probe(self) -> None:
        """A bounded round trip: raises if the peer stopped answering (dead host, cut link)."""
        import paramiko

        if not self.active:
            raise self._dead("a liveness check")
        try:
            chan = self.transport.open_session(timeout=self.options.probe_timeout)
        except (paramiko.SSHException, EOFError, OSError):
            self.close()
            raise UnreachableError(f"{self.target.where} stopped answering SSH (no reply within "
                                   f"{self.options.probe_timeout:g}s): the task or the network is gone.") from None
        chan.close()

    def sftp(self) -> paramiko.SFTPClient:
        """The session's SFTP client (opened once), with the io timeout on its channel."""
        import paramiko

        with self._lock:
            if self._sftp is not None and self.active:
                return self._sftp
            chan = self.open_channel()
            try:
                chan.invoke_subsystem("sftp")
                self._sftp = paramiko.SFTPClient(chan)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                chan.close()
                raise UnreachableError(f"{self.target.where} refused the SFTP subsystem ({exc}): the "
                                       "task's sshd needs 'Subsystem sftp'.") from None
            chan.settimeout(self.options.io_timeout)
            return self._sftp

    def remote_cap(self, name: str, compute: Callable[[], Any]) -> Any:
        """Cache facts about the remote (e.g. whether it has sha256sum) per connection."""
        if name not in self._remote_caps:
            self._remote_caps[name] = compute()
        return self._remote_caps[name]

    def close(self) -> None:
        with self._lock:
            sftp, self._sftp = self._sftp, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception:
                pass
        if self.transport is not None:
            try:
                self.transport.close()
            except Exception:
                pass

    def __enter__(self) -> "SshSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_pkey(key: Any, passphrase: str | None) -> paramiko.PKey:
    import paramiko

    if isinstance(key, paramiko.PKey):
        return key
    if isinstance(key, SshKey):
        return key.load(passphrase)
    if isinstance(key, (str, Path)):
        return load_private_key(key, passphrase)
    raise TypeError("key must be an SshKey, a path or a paramiko PKey")


def _restrict_host_key_types(transport: Any, known_types: list[str]) -> None:
    """Like OpenSSH: prefer the key types already recorded, so a second type is no 'change'."""
    if not known_types:
        return
    opts = transport.get_security_options()
    wanted = [alg for t in known_types for alg in _KEY_ALGORITHMS.get(t, (t,))]
    available = [k for k in wanted if k in opts.key_types]
    if available:
        opts.key_types = tuple(dict.fromkeys(available))


def connect(target: SshTarget, key: Any, *, passphrase: str | None = None,
            known_hosts: KnownHosts | None = None, options: SshOptions | None = None) -> SshSession:
    """Connect, verify the host key against pai_magic's known_hosts, authenticate with ``key``.

    Raises UnreachableError / PaiTimeoutError (network), HostKeyError (changed key within a
    job) or AuthError (key refused) with one line that says what to do next.
    """
    import paramiko

    options = options or SshOptions()
    known_hosts = known_hosts or KnownHosts()
    pkey = _as_pkey(key, passphrase)
    sock = open_socket(target.host, target.port, options.connect_timeout, target.where)
    _tune_socket(sock, options.tcp_keepalive)
    sock.settimeout(None)  # paramiko's own timeouts take over from here
    transport = paramiko.Transport(sock, default_window_size=options.window_size,
                                   default_max_packet_size=options.max_packet_size)
    transport.banner_timeout = options.banner_timeout
    transport.handshake_timeout = options.banner_timeout
    transport.auth_timeout = options.auth_timeout
    sec = transport.get_security_options()
    preferred = [c for c in options.ciphers if c in sec.ciphers]
    sec.ciphers = tuple(preferred + [c for c in sec.ciphers if c not in preferred])
    _restrict_host_key_types(transport, [k.key_type for k in known_hosts.lookup(target.host_key_alias)])
    ok = False
    try:
        try:
            transport.start_client(timeout=options.banner_timeout + options.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            msg = str(exc) or type(exc).__name__
            if "timeout" in msg.lower() or isinstance(exc, socket.timeout):
                raise PaiTimeoutError(f"{target.where} accepted TCP but did not complete the SSH handshake "
                                      f"within {options.banner_timeout:g}s: is an sshd listening there?") from None
            raise UnreachableError(f"SSH handshake with {target.where} failed ({msg}): check that the port "
                                   "is the task's ssh port.") from None
        server_key = transport.get_remote_server_key()
        known_hosts.check(target.host_key_alias, server_key.get_name(), server_key.get_base64(),
                          where=target.where)
        try:
            transport.auth_publickey(target.user, pkey)
        except paramiko.BadAuthenticationType as exc:
            raise AuthError(f"{target.where} does not accept key authentication for {target.user} "
                            f"(it allows: {', '.join(exc.allowed_types) or 'nothing'}).") from None
        except paramiko.AuthenticationException as exc:
            if "timeout" in str(exc).lower():
                raise PaiTimeoutError(f"SSH authentication with {target.where} got no answer within "
                                      f"{options.auth_timeout:g}s: retry, or check the task.") from None
            raise AuthError(f"{target.where} refused the SSH key {pkey.fingerprint} for {target.user}: add the "
                            "key to your profile (pai-magic ssh-key --add) before submitting, or submit "
                            "the job with --ssh.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise UnreachableError(f"SSH connection to {target.where} broke during authentication ({exc}): "
                                   "retry.") from None
        ok = True
        return SshSession(transport, target, options)
    finally:
        if not ok:
            transport.close()
