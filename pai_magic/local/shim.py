"""The parent of one task's processes, the way a container's init ends everything in it.

Run as ``python -I -S shim.py [--uid N --gid N] [--grace S] [--script F] -- COMMAND...`` by the runner (by
file path, standard library only, so it starts in a few milliseconds and imports nothing of
the project). Why it exists: a task may leave processes behind that a process group does not
hold (``setsid sleep &``, a daemon, ``env -i`` children), which kept a job RUNNING (their
output pipe stayed open) or survived the job. The shim marks itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``), so every orphan of the task is re-parented to it, and:

- when COMMAND (the task's main process) ends, it SIGKILLs every process below it and exits
  with COMMAND's exit code (128+N for a signal), as a container ends with its main process;
- on SIGTERM (a STOP) it sends SIGTERM to every process below it and SIGKILLs what is left
  after ``--grace`` seconds; on SIGUSR1 it SIGKILLs everything at once.

With ``--uid/--gid`` (the backend runs as root) COMMAND runs as that unprivileged user while
the shim stays able to end it.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt every orphan below this process (Linux 3.4+); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, found through /proc's parent links."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the name field may hold spaces and parentheses: the fields after its last ')' are fixed
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) < 2 or fields[0] == b"Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_all(sig: int) -> int:
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


def reap() -> list[tuple[int, int]]:
    """Collect every exited child without blocking: [(pid, status)]."""
    done: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, status))


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; a number the platform does not name stays a number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def killed_line(signum: int) -> str:
    """The task's last stderr line when a signal ended its main process (what faces show)."""
    name = signal_name(signum)
    hint = " (out of memory, or a kill from outside the job?)" if signum == signal.SIGKILL else ""
    return f"pai-magic local: the task's main process was killed by {name}{hint}; exit code {128 + signum}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shim.py")
    parser.add_argument("--uid", type=int, default=None)
    parser.add_argument("--gid", type=int, default=None)
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--script", default=None,
                        help="opened here (before any user switch) and appended to COMMAND as /dev/fd/N, so "
                             "the task reads its commands without access to the folder they are in")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command is required after --")
    become_subreaper()
    state: dict[str, Any] = {"term_at": None, "kill": False}

    def on_term(_sig: int, _frame: Any) -> None:
        if state["term_at"] is None:
            state["term_at"] = time.monotonic()
            signal_all(signal.SIGTERM)

    def on_kill(_sig: int, _frame: Any) -> None:
        state["kill"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_kill)
    kwargs: dict[str, Any] = {}
    if args.script:
        fd = os.open(args.script, os.O_RDONLY)
        command = [*command, f"/dev/fd/{fd}"]
        kwargs["pass_fds"] = (fd,)
    if args.uid is not None and os.geteuid() == 0:
        kwargs.update(user=args.uid, group=args.gid if args.gid is not None else args.uid, extra_groups=[])
    try:
        # inherits stdio, cwd and env; its own session and process group, as a task had before the shim
        main_proc = subprocess.Popen(command, start_new_session=True, **kwargs)
    except OSError as exc:
        print(f"could not start {command[0]}: {exc}", file=sys.stderr)
        return 127
    code: int | None = None
    while code is None:
        for pid, status in reap():
            if pid == main_proc.pid:
                code = exit_code(status)
                main_proc.returncode = code  # reaped here, not by Popen
                if os.WIFSIGNALED(status) and state["term_at"] is None and not state["kill"]:
                    # not a STOP: say so, or 137 reads as the commands' own exit code
                    print(killed_line(os.WTERMSIG(status)), file=sys.stderr, flush=True)
        if code is not None:
            break
        if state["kill"] or (state["term_at"] is not None and time.monotonic() - state["term_at"] > args.grace):
            signal_all(signal.SIGKILL)
        time.sleep(0.05)
    # the main process ended: nothing it started may outlive it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = signal_all(signal.SIGKILL)
        reap()
        if not left:
            break
        time.sleep(0.02)
    return code


if __name__ == "__main__":
    sys.exit(main())
