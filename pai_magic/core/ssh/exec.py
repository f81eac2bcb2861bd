"""Run one command in a task, streaming its output as it arrives.

Why a hand-written loop instead of ``exec_command().read()``: a notebook wants stdout and
stderr line by line while the command runs, Ctrl-C must close the channel (and ask the remote
to interrupt the command), and a peer that vanished must be noticed: the loop probes the
connection after ``probe_interval`` seconds of silence instead of waiting forever.
"""
from __future__ import annotations

import codecs
import select
import shlex
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pai_magic.core.errors import PaiTimeoutError, UnreachableError
from pai_magic.core.ssh.connect import SshSession

if TYPE_CHECKING:  # paramiko loads lazily: %pai_* and the CLI start fast
    import paramiko

Output = Callable[[str], None]
#: What ``run_command`` returns when ``cancel`` stopped the command (a shell's Ctrl-C status).
CANCELLED_STATUS = 130
#: The remote sent no exit status (killed by a signal, or the channel closed first).
NO_STATUS = -1


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def _send_signal(chan: paramiko.Channel, name: str) -> None:
    """Ask the remote to deliver a signal (RFC 4254 6.9; OpenSSH sshd honours it).

    paramiko has no public call for this request, so it is built here; servers that do not
    know it ignore it, and the channel close that follows ends the command anyway.
    """
    try:
        import paramiko
        from paramiko.common import cMSG_CHANNEL_REQUEST

        msg = paramiko.Message()
        msg.add_byte(cMSG_CHANNEL_REQUEST)
        msg.add_int(chan.remote_chanid)
        msg.add_string("signal")
        msg.add_boolean(False)
        msg.add_string(name)
        transport: Any = chan.transport  # _send_user_message is private: the stubs omit it
        transport._send_user_message(msg)
    except Exception:
        pass


#: Runs the user's command so that it dies when the channel does. OpenSSH's sshd refuses the
#: "signal" request for root sessions ("session signalling requires privilege separation")
#: and, without a pty, closing the channel kills nothing; so the channel's stdin is kept open
#: as a lifeline: when it reaches EOF (channel closed by Ctrl-C or cancel, or the link died
#: and sshd noticed) the command's process group gets SIGHUP, then SIGKILL. The command itself
#: reads /dev/null and runs under the login shell ($SHELL) in its own session (setsid, or
#: job control where setsid is missing); the wrapper's own messages go to /dev/null.
LIFELINE_WRAPPER = (
    'exec 3>&2 2>/dev/null 4<&0; s="${SHELL:-/bin/sh}"; '
    'if command -v setsid >/dev/null; then setsid "$s" -c "$1" </dev/null 2>&3 3>&- 4<&- & '
    'else set -m; "$s" -c "$1" </dev/null 2>&3 3>&- 4<&- & fi; p=$!; '
    '( while read -r _; do :; done; kill -HUP -$p || kill -HUP $p; sleep 2; kill -KILL -$p || kill -KILL $p ) '
    '<&4 >/dev/null 3>&- 4<&- & w=$!; wait $p; r=$?; kill $w; exit $r'
)


def lifeline_command(command: str) -> str:
    """``command`` wrapped so that closing the channel ends it (see LIFELINE_WRAPPER)."""
    return f"sh -c {shlex.quote(LIFELINE_WRAPPER)} pai_magic {shlex.quote(command)}"


def _env_prefix(env: dict[str, str] | None) -> str:
    """Environment as shell assignments: sshd drops most ``env`` requests (AcceptEnv)."""
    if not env:
        return ""
    for key in env:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            from pai_magic.core.errors import InvalidInputError

            raise InvalidInputError(f"{key!r} is not a valid environment variable name.")
    return "export " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()) + "; "


def run_command(session: SshSession, command: str, *, on_stdout: Output | None = None,
                on_stderr: Output | None = None, timeout: float | None = None,
                cancel: threading.Event | None = None, stdin: bytes | str | None = None,
                env: dict[str, str] | None = None, get_pty: bool = False,
                kill_on_close: bool = True) -> int:
    """Run ``command`` (a shell command line) and return its exit status.

    Output goes to the callbacks as decoded text chunks while the command runs. ``timeout``
    bounds the whole command (None: no limit, but a dead peer is still detected); setting
    ``cancel`` closes the channel and returns 130; KeyboardInterrupt closes the channel and
    propagates. With ``kill_on_close`` (and no ``stdin`` data) the remote command is wrapped
    so that closing the channel ends it; it then reads /dev/null. Returns -1 if the remote
    gave no status.
    """
    out_dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    err_dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    emit_out = on_stdout or (lambda _s: None)
    emit_err = on_stderr or (lambda _s: None)
    chan = session.open_channel()
    deadline = None if timeout is None else time.monotonic() + timeout
    last_heard = time.monotonic()
    try:
        if get_pty:
            chan.get_pty()
        lifeline = kill_on_close and stdin is None and not get_pty
        full = _env_prefix(env) + command
        chan.exec_command(lifeline_command(full) if lifeline else full)
        if stdin is not None:
            chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
        if not lifeline:
            chan.shutdown_write()  # a command reading stdin sees EOF instead of hanging
        while True:
            got = False
            while chan.recv_ready():
                data = chan.recv(1 << 16)
                if not data:
                    break
                got = True
                text = out_dec.decode(data)
                if text:
                    emit_out(text)
            while chan.recv_stderr_ready():
                data = chan.recv_stderr(1 << 16)
                if not data:
                    break
                got = True
                text = err_dec.decode(data)
                if text:
                    emit_err(text)
            if got:
                last_heard = time.monotonic()
                continue
            # OpenSSH may send the exit status before the last output: drain until EOF too.
            if chan.closed or (chan.exit_status_ready() and chan.eof_received):
                break
            if cancel is not None and cancel.is_set():
                _send_signal(chan, "INT")
                return CANCELLED_STATUS
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                _send_signal(chan, "TERM")
                raise PaiTimeoutError(f"Command in {session.target.where} still running after {timeout:g}s: "
                                      "it was stopped; raise the timeout or run it in the background.")
            if not session.active:
                raise UnreachableError(f"SSH connection to {session.target.where} was lost while the command "
                                       "ran; its exit status is unknown.")
            if now - last_heard >= session.options.probe_interval:
                session.probe()
                last_heard = time.monotonic()
            if chan.eof_received:
                chan.status_event.wait(0.05)
            else:
                select.select([chan], [], [], 0.2)
        tail = out_dec.decode(b"", final=True)
        if tail:
            emit_out(tail)
        tail = err_dec.decode(b"", final=True)
        if tail:
            emit_err(tail)
        # paramiko also sets the status event when a channel closes, leaving exit_status -1
        if chan.exit_status_ready() and chan.recv_exit_status() != -1:
            return int(chan.recv_exit_status())
        # No status: a signal killed the command, or the link died (paramiko closes the
        # channels a moment before it marks the transport dead, so ask the peer).
        try:
            session.probe()
        except UnreachableError:
            raise UnreachableError(f"SSH connection to {session.target.where} was lost while the command "
                                   "ran; its exit status is unknown.") from None
        return NO_STATUS
    except KeyboardInterrupt:
        _send_signal(chan, "INT")
        raise
    finally:
        try:
            chan.close()
        except Exception:
            pass


def run_capture(session: SshSession, command: str, *, timeout: float | None = 60.0,
                env: dict[str, str] | None = None) -> CommandResult:
    """Run and collect the output (for short helper commands such as ``sha256sum``)."""
    out: list[str] = []
    err: list[str] = []
    status = run_command(session, command, on_stdout=out.append, on_stderr=err.append,
                         timeout=timeout, env=env)
    return CommandResult(status, "".join(out), "".join(err))
