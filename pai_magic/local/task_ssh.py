"""The embedded backend's per-task SSH server: what a job container's sshd is on a cluster.

Why paramiko's server side: one SSH library for client and server, no root, no sshd config,
no /run/sshd. The server speaks enough of what OpenSSH clients use that the portal's printed
command works with stock ``ssh``, ``scp`` (SFTP mode, the default since OpenSSH 9) and
``sftp``, and with pai_magic's own client: public-key auth only (the profile keys and the
job's ``userssh`` key), ``exec`` and an interactive ``shell`` (with or without a pty) running
in the task's working directory and environment, exit statuses, SFTP rooted at ``/`` but
starting in the working directory, and ``direct-tcpip`` (``ssh -L``, pai_magic's port
forwarder) to loopback destinations only: the task's own ports, never the backend's network.

User names: any name is accepted. The portal prints ``root@``, but here every command runs as
the backend's own OS user whatever name is given, so the name carries no authority; the key
is what authenticates (``ssh host`` without ``root@`` also works).
"""
from __future__ import annotations

import base64
import errno
import ipaddress
import fcntl
import logging
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any, cast

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_OK

from pai_magic.local.shim import descendants  # one /proc walk for the shim and the SSH server

log = logging.getLogger("pai_magic.local.task_ssh")
# A client that disconnects abruptly makes paramiko's server thread log "Socket exception" at
# ERROR; with no handler configured that lands in the notebook cell of a kernel running
# %pai_local. Applications that configure logging still get the records by propagation.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

HOST_KEY_NAME = "ssh_host_ed25519_key"
KILL_GRACE = 2.0  # seconds between SIGHUP and SIGKILL when a client goes away
REPLY_GRACE = 0.05  # seconds a channel stays open after its exec/shell request (see start())
FORWARD_CONNECT_TIMEOUT = 10.0
FORWARD_BUF = 1 << 16


# ----------------------------------------------------------------------------- host key
def load_or_create_host_key(host_key_dir: Path) -> paramiko.PKey:
    """One ed25519 host key per directory, created on first use (0600, OpenSSH format)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    host_key_dir = Path(host_key_dir)
    path = host_key_dir / HOST_KEY_NAME
    if not path.exists():
        host_key_dir.mkdir(parents=True, exist_ok=True)
        key = ed25519.Ed25519PrivateKey.generate()
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            os.link(tmp, path)  # first writer wins when two tasks start together
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode()
        pub_path = path.with_name(path.name + ".pub")
        if not pub_path.exists():
            pub_path.write_text(pub + " pai_magic-task\n")
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def parse_authorized_keys(lines: list[str]) -> set[str]:
    """The base64 blobs of the given public keys (options prefixes and comments ignored)."""
    blobs: set[str] = set()
    for raw in lines:
        for line in str(raw).splitlines():
            parts = line.strip().split()
            if not parts or parts[0].startswith("#"):
                continue
            for i, word in enumerate(parts[:-1]):
                if word.startswith(("ssh-", "ecdsa-", "sk-")):
                    try:
                        base64.b64decode(parts[i + 1], validate=True)
                    except ValueError:
                        continue
                    blobs.add(parts[i + 1])
                    break
    return blobs


# ---------------------------------------------------------------------------- forwarding
def loopback_destination(host: str) -> bool:
    """Only the task's own loopback may be reached through ``direct-tcpip`` (``ssh -L``):
    the task SSH server is no door into the backend's network."""
    name = (host or "").strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _bridge(channel: paramiko.Channel, sock: socket.socket) -> None:
    """Copy both ways until both sides sent EOF; an EOF is passed on as a half-close, and
    when either side closes for good both ends are closed."""
    done = threading.Event()
    ended = {"up": False, "down": False}
    lock = threading.Lock()

    def finish(which: str) -> None:
        with lock:
            ended[which] = True
            both = ended["up"] and ended["down"]
        if both:
            done.set()

    def upstream() -> None:  # channel -> destination
        try:
            while True:
                data = channel.recv(FORWARD_BUF)
                if not data:
                    break
                sock.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            done.set()
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finish("up")

    def downstream() -> None:  # destination -> channel
        try:
            while True:
                data = sock.recv(FORWARD_BUF)
                if not data:
                    break
                channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            done.set()
        try:
            channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finish("down")

    channel.settimeout(None)
    sock.settimeout(None)
    threads = [threading.Thread(target=upstream, name="pai-task-ssh-fwd-up", daemon=True),
               threading.Thread(target=downstream, name="pai-task-ssh-fwd-down", daemon=True)]
    for t in threads:
        t.start()
    while not done.wait(1.0):
        if channel.closed or not channel.get_transport().is_active():
            break
    for closer in (sock.close, channel.close):
        try:
            closer()
        except Exception:
            pass


# ------------------------------------------------------------------------------ sessions
def _shell() -> str:
    for cand in (os.environ.get("SHELL"), "/bin/bash", "/bin/sh"):
        if cand and os.path.exists(cand):
            return cand
    return "/bin/sh"


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _kill_tree(pid: int, sig: int) -> None:
    """Signal the session started for a channel and everything it spawned, wherever it went."""
    targets = descendants(pid)
    _killpg(pid, sig)
    for child in targets:
        try:
            pgid = os.getpgid(child)
        except ProcessLookupError:
            continue
        if pgid != pid:
            _killpg(pgid, sig)
        try:
            os.kill(child, sig)
        except (ProcessLookupError, PermissionError):
            pass


class _ChannelSession:
    """One session channel: its pty wish, env requests and the process it runs."""

    def __init__(self, server: "TaskSshServer", channel: paramiko.Channel, peer: tuple[str, int]) -> None:
        self.server = server
        self.channel = channel
        self.peer = peer
        self.pty: tuple[str, int, int] | None = None  # term, cols, rows
        self.env_requests: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.master_fd: int | None = None

    def environment(self) -> dict[str, str]:
        env = dict(self.server.env)
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            user = "root"
        env.setdefault("PATH", os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
        env.setdefault("HOME", os.environ.get("HOME", str(self.server.cwd)))
        env.setdefault("USER", user)
        env.setdefault("LOGNAME", user)
        env.setdefault("SHELL", _shell())
        for key, value in self.env_requests.items():
            if key == "LANG" or key.startswith("LC_") or key not in env:
                env[key] = value
        if self.pty:
            env["TERM"] = self.pty[0] or "xterm"
        local = self.server.host
        env["SSH_CONNECTION"] = f"{self.peer[0]} {self.peer[1]} {local} {self.server.port}"
        env["SSH_CLIENT"] = f"{self.peer[0]} {self.peer[1]} {self.server.port}"
        return env

    def start(self, command: str | None) -> bool:
        shell = _shell()
        argv = [shell, "-c", command] if command is not None else ([shell, "-i"] if self.pty else [shell])
        try:
            if self.pty:
                self._start_pty(argv)
            else:
                self._start_pipes(argv)
        except OSError as exc:
            log.warning("task ssh: cannot start %s: %s", argv[0], exc)
            return False
        # paramiko sends the reply to this request only after the callback returns; a command
        # that ends at once must not have its EOF and close overtake that reply (the client
        # would see "channel closed" instead of its output)
        self._earliest_close = time.monotonic() + REPLY_GRACE
        waiter = threading.Thread(target=self._wait, name="pai-task-ssh-wait", daemon=True)
        waiter.start()
        return True

    def _as_task_user(self) -> dict[str, Any]:
        """Popen arguments that run a session as the task's uid (set in the child, between
        fork and exec: safe in this threaded process), or none when the task runs as we do."""
        ident = self.server.identity
        if ident is None:
            return {}
        return {"user": ident[0], "group": ident[1], "extra_groups": []}

    def _start_pipes(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, cwd=str(self.server.cwd), env=self.environment(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, close_fds=True, **self._as_task_user())
        self.server._track(self.proc)
        assert self.proc.stdout is not None and self.proc.stderr is not None  # both PIPE above
        self._pumps = [
            threading.Thread(target=self._pump_out, args=(self.proc.stdout.fileno(), self.channel.sendall),
                             daemon=True),
            threading.Thread(target=self._pump_out, args=(self.proc.stderr.fileno(),
                                                          self.channel.sendall_stderr), daemon=True),
        ]
        for t in self._pumps:
            t.start()
        threading.Thread(target=self._pump_in, args=(self.proc.stdin,), daemon=True).start()

    def _start_pty(self, argv: list[str]) -> None:
        import pty

        master, slave = pty.openpty()
        term, cols, rows = self.pty or ("xterm", 80, 24)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows or 24, cols or 80, 0, 0))
        setsid = shutil.which("setsid")
        if setsid:
            # util-linux setsid --ctty: new session with the pty as controlling terminal,
            # without a preexec_fn in this threaded process.
            full = [setsid, "--ctty"] + argv
            self.proc = subprocess.Popen(full, cwd=str(self.server.cwd), env=self.environment(),
                                         stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                         **self._as_task_user())
        else:
            self.proc = subprocess.Popen(argv, cwd=str(self.server.cwd), env=self.environment(),
                                         stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                         start_new_session=True, **self._as_task_user())
        os.close(slave)
        self.master_fd = master
        self.server._track(self.proc)
        self._pumps = [threading.Thread(target=self._pump_out, args=(master, self.channel.sendall), daemon=True)]
        self._pumps[0].start()
        threading.Thread(target=self._pump_in_fd, args=(master,), daemon=True).start()

    def resize(self, cols: int, rows: int) -> None:
        if self.master_fd is not None:
            try:
                fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass

    def _pump_out(self, fd: int, send) -> None:
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:  # EIO on a pty whose last writer closed
                break
            if not data:
                break
            try:
                send(data)
            except (OSError, EOFError, paramiko.SSHException):
                break

    def _pump_in(self, stdin) -> None:
        try:
            while True:
                data = self.channel.recv(1 << 16)
                if not data:
                    break
                stdin.write(data)
                stdin.flush()
        except (OSError, EOFError, ValueError, paramiko.SSHException):
            pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _pump_in_fd(self, fd: int) -> None:
        try:
            while True:
                data = self.channel.recv(1 << 16)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def _wait(self) -> None:
        proc = self.proc
        assert proc is not None
        hung_up_at: float | None = None
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            gone = self.channel.closed or not self.channel.get_transport().is_active()
            if gone and hung_up_at is None:
                _kill_tree(proc.pid, signal.SIGHUP)  # the client went away (Ctrl-C, lost link)
                hung_up_at = time.monotonic()
            elif hung_up_at is not None and time.monotonic() - hung_up_at > KILL_GRACE:
                _kill_tree(proc.pid, signal.SIGKILL)
        for t in getattr(self, "_pumps", []):
            t.join(timeout=5 if self.master_fd is None else 0.5)
        if self.master_fd is not None:
            try:
                os.close(self.master_fd)
            except OSError:
                pass
        self.server._untrack(proc)
        status = code if code >= 0 else 128 - code
        delay = getattr(self, "_earliest_close", 0.0) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            self.channel.send_exit_status(status)
            self.channel.shutdown_write()
            self.channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass


class _Interface(paramiko.ServerInterface):
    """Authentication and channel requests of one connection."""

    def __init__(self, server: "TaskSshServer", peer: tuple[str, int]) -> None:
        self.server = server
        self.peer = peer
        self.sessions: dict[int, _ChannelSession] = {}
        self.forwards: dict[int, socket.socket] = {}  # channel id -> connected destination

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.get_base64() in self.server.authorized:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple[str, int],
                                           destination: tuple[str, int]) -> int:
        """``ssh -L`` / a port forward: loopback destinations only, connected before the
        channel is confirmed so a closed port fails the open (as with OpenSSH)."""
        host, port = str(destination[0]), int(destination[1])
        if not loopback_destination(host):
            log.info("task ssh: refused forward to %s:%s (only loopback destinations)", host, port)
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        target = "127.0.0.1" if host.lower() in ("localhost", "localhost.localdomain") else host.strip("[]")
        try:
            sock = socket.create_connection((target, port), timeout=FORWARD_CONNECT_TIMEOUT)
        except OSError as exc:
            log.debug("task ssh: forward to %s:%s failed: %s", host, port, exc)
            return OPEN_FAILED_CONNECT_FAILED
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        old = self.forwards.pop(chanid, None)
        if old is not None:
            old.close()
        self.forwards[chanid] = sock
        return OPEN_SUCCEEDED

    def _session(self, channel: paramiko.Channel) -> _ChannelSession:
        # channel ids are reused once a channel closes: a new channel gets a new session
        sess = self.sessions.get(channel.get_id())
        if sess is None or sess.channel is not channel:
            sess = self.sessions[channel.get_id()] = _ChannelSession(self.server, channel, self.peer)
        return sess

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes) -> bool:
        term = term.decode() if isinstance(term, bytes) else term
        self._session(channel).pty = (term, width, height)
        return True

    def check_channel_env_request(self, channel, name, value) -> bool:
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode() if isinstance(value, bytes) else value
        self._session(channel).env_requests[name] = value
        return True

    def check_channel_shell_request(self, channel) -> bool:
        return self._session(channel).start(None)

    def check_channel_exec_request(self, channel, command) -> bool:
        command = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        return self._session(channel).start(command)

    def check_channel_window_change_request(self, channel, width, height, pixelwidth, pixelheight) -> bool:
        self._session(channel).resize(width, height)
        return True

    def check_global_request(self, kind: str, msg: paramiko.Message) -> bool:
        return False  # keepalive probes get a (failure) reply, which is all they need

    def check_port_forward_request(self, address: str, port: int) -> bool:
        return False


# --------------------------------------------------------------------------------- SFTP
def _set_attr(path: str, attr: SFTPAttributes) -> None:
    """Apply SFTP attributes. paramiko's ``SFTPServer.set_file_attr`` truncates a file to
    zero before resizing it (it reopens with "w+"), which zeroed files ``scp`` uploaded; the
    size is set with ``os.truncate`` here instead."""
    if attr.st_mode is not None:  # paramiko leaves a field None when its flag is not set
        os.chmod(path, attr.st_mode & 0o7777)
    if attr.st_uid is not None and attr.st_gid is not None:
        os.chown(path, attr.st_uid, attr.st_gid)
    if attr.st_atime is not None and attr.st_mtime is not None:
        os.utime(path, (attr.st_atime, attr.st_mtime))
    if attr.st_size is not None:
        os.truncate(path, attr.st_size)


class _TaskHandle(SFTPHandle):
    """An open file; fstat and fsetstat are what ``scp``/``sftp`` use after writing."""

    filename: str
    readfile: Any  # read and written by paramiko's SFTPHandle (the stubs omit them)
    writefile: Any

    def stat(self):
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)

    def chattr(self, attr: SFTPAttributes) -> int:
        try:
            _set_attr(self.filename, attr)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


#: setgroups(2) by architecture: glibc's setgroups() applies to every thread of the process
#: (it is broadcast, as setuid is), the raw system call only to the calling one
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}


def _only_group_this_thread(libc: Any, gid: int) -> None:
    """Leave the backend's supplementary groups in this thread only (else a file its groups
    may read is readable over the task's SFTP whatever the filesystem uid)."""
    import ctypes
    import platform

    number = _SYS_SETGROUPS.get(platform.machine())
    if number is None:
        raise PermissionError(f"task sftp: cannot drop supplementary groups on {platform.machine()}")
    groups = (ctypes.c_uint * 1)(gid)
    if libc.syscall(number, 1, groups) != 0:
        raise PermissionError(f"task sftp: could not drop supplementary groups "
                              f"({os.strerror(ctypes.get_errno())})")


class _TaskSftp(SFTPServerInterface):
    """The filesystem as the task sees it: ``/`` is ``/``; relative paths start in cwd."""

    def __init__(self, server: Any, *args: Any, cwd: str = "/", identity: tuple[int, int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.cwd = cwd
        self.identity = identity

    def session_started(self) -> None:
        """Act as the task's user for the rest of this SFTP session.

        The session runs in its own thread (paramiko's subsystem thread); the filesystem uid
        and gid are per thread on Linux, so setting them here makes every file operation of
        this session checked as, and create files owned by, the task's uid, while the rest of
        the backend stays root. Leaving uid 0 also drops the thread's file capabilities
        (CAP_DAC_OVERRIDE, CAP_CHOWN ...). glibc's setfsuid is a plain system call (it is not
        broadcast to other threads as setuid is).
        """
        if self.identity is None:
            return
        uid, gid = self.identity
        libc = _libc()
        _only_group_this_thread(libc, gid)
        libc.setfsgid(gid)
        libc.setfsuid(uid)
        if libc.setfsuid(-1) != uid:  # setfsuid returns the previous value: check it took
            raise PermissionError(f"task sftp: could not act as uid {uid}")

    def _path(self, path: str) -> str:
        path = path or "."
        return os.path.normpath(path if path.startswith("/") else os.path.join(self.cwd, path))

    def canonicalize(self, path: str) -> str:
        return os.path.realpath(self._path(path))

    def list_folder(self, path: str):
        real = self._path(path)
        try:
            out = []
            for name in os.listdir(real):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)

    def stat(self, path: str):
        try:
            return SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)

    def lstat(self, path: str):
        try:
            return SFTPAttributes.from_stat(os.lstat(self._path(path)))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)

    def open(self, path: str, flags: int, attr: SFTPAttributes):
        real = self._path(path)
        mode = attr.st_mode & 0o7777 if attr is not None and attr.st_mode is not None else 0o666
        try:
            fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0), mode)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        if flags & os.O_CREAT and attr is not None:
            attr.st_mode = None  # the mode went into open() already
            _set_attr(real, attr)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        try:
            fobj = os.fdopen(fd, fmode)
        except OSError as exc:
            os.close(fd)
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        handle = _TaskHandle(flags)
        handle.filename = real
        handle.readfile = fobj
        handle.writefile = fobj
        return handle

    def remove(self, path: str) -> int:
        try:
            os.remove(self._path(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        """SFTP v3 rename refuses to replace an existing target (as OpenSSH's server does)."""
        old, new = self._path(oldpath), self._path(newpath)
        try:
            os.link(old, new)
            os.unlink(old)
        except FileExistsError:
            return SFTP_FAILURE
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                if os.path.lexists(new):
                    return SFTP_FAILURE
                try:
                    os.rename(old, new)
                except OSError as exc2:
                    return SFTPServer.convert_errno(exc2.errno or errno.EIO)
                return SFTP_OK
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._path(oldpath), self._path(newpath))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        real = self._path(path)
        mode = attr.st_mode & 0o7777 if attr is not None and attr.st_mode is not None else 0o777
        try:
            os.mkdir(real, mode)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._path(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        try:
            _set_attr(self._path(path), attr)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        try:
            os.symlink(target_path, self._path(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)
        return SFTP_OK

    def readlink(self, path: str):
        try:
            return os.readlink(self._path(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno or errno.EIO)


class _TaskSftpServer(SFTPServer):
    """SFTP subsystem that ends with exit status 0, as OpenSSH's does: ``scp`` (SFTP mode)
    reports failure when the channel closes without one."""

    def finish_subsystem(self) -> None:
        try:
            if self.sock is not None:
                self.sock.send_exit_status(0)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        super().finish_subsystem()


# ------------------------------------------------------------------------------- server
class TaskSshServer:
    """Listens on ``host:port`` until ``close()``; one thread per connection."""

    def __init__(self, host: str, port: int, authorized_keys: list[str], cwd: Path,
                 env: dict[str, str], host_key_dir: Path, identity: tuple[int, int] | None = None) -> None:
        self.host = host
        self.cwd = Path(cwd)
        # (uid, gid) the task runs as (the backend's per-user mode): SSH sessions and SFTP act
        # as it too, or files they make would be root's and out of the task's reach
        self.identity = identity
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.authorized = parse_authorized_keys(list(authorized_keys or []))
        self.host_key = load_or_create_host_key(Path(host_key_dir))
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._transports: set[paramiko.Transport] = set()
        self._procs: set[subprocess.Popen] = set()
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, int(port)))
        except OSError:
            self._sock.close()
            raise
        self._sock.listen(16)
        self._sock.settimeout(0.5)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"pai-task-ssh-{self.port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"TaskSshServer({self.host}:{self.port}, cwd={self.cwd})"

    @property
    def host_public_line(self) -> str:
        return f"{self.host_key.get_name()} {self.host_key.get_base64()}"

    def _track(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)

    def _untrack(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn, peer[:2]), name="pai-task-ssh-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(conn, default_window_size=8 << 20)
        transport.banner_timeout = 30
        transport.handshake_timeout = 30
        transport.auth_timeout = 60
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", _TaskSftpServer, sftp_si=_TaskSftp, cwd=str(self.cwd),
                                        identity=self.identity)
        with self._lock:
            if self._closed.is_set():
                transport.close()
                return
            self._transports.add(transport)
        try:
            transport.start_server(server=_Interface(self, peer))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("task ssh: handshake with %s failed: %s", peer, exc)
            transport.close()
        # paramiko keeps channels only weakly and closes one when its object is collected:
        # hold every accepted channel until it is closed.
        channels: list[paramiko.Channel] = []
        interface = cast("_Interface | None", transport.server_object)
        while transport.is_active() and not self._closed.is_set():
            chan = transport.accept(timeout=1.0)
            if chan is not None:
                channels.append(chan)
                dest = interface.forwards.pop(chan.get_id(), None) if interface is not None else None
                if dest is not None:
                    threading.Thread(target=_bridge, args=(chan, dest), name="pai-task-ssh-fwd",
                                     daemon=True).start()
            channels = [c for c in channels if not c.closed]
        if interface is not None:
            for sock in interface.forwards.values():
                sock.close()
        with self._lock:
            self._transports.discard(transport)

    def close(self) -> None:
        """Stop listening, drop every connection, end every process started over SSH."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            transports = list(self._transports)
            procs = list(self._procs)
        for t in transports:  # like a container going away: the link drops first
            try:
                t.close()
            except Exception:
                pass
        trees = {proc.pid: [(c, _start_time(c)) for c in descendants(proc.pid)] for proc in procs}
        for proc in procs:
            _kill_tree(proc.pid, signal.SIGHUP)
        for proc in procs:
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc.pid, signal.SIGKILL)
            for child, started in trees[proc.pid]:  # reparented by now: signalled by pid,
                if _start_time(child) == started:     # unless that pid was reused meanwhile
                    try:
                        os.kill(child, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        self._thread.join(timeout=2)

    def __enter__(self) -> "TaskSshServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_task_ssh(host: str, port: int, authorized_keys: list[str], cwd: Path, env: dict[str, str],
                   host_key_dir: Path, identity: tuple[int, int] | None = None) -> TaskSshServer:
    """Start a task's SSH server (the local backend calls this when a task starts);
    ``identity``: the (uid, gid) the task runs as, which its sessions and SFTP use too."""
    return TaskSshServer(host, port, authorized_keys, cwd, env, host_key_dir, identity)
