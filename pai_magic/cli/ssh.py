"""``pai-magic ssh-key``, ``ssh-info``, ``ssh``, ``upload``, ``download``: into a job's task.

Thin: parse, call one function of :mod:`pai_magic.core.ssh.tasks` (or ``info``), print. A
command's output streams to stdout/stderr as it arrives and its exit status becomes ours;
``ssh NAME`` without a command, in a terminal, execs OpenSSH ``ssh`` with the task's port,
the key and pai_magic's known_hosts options. Passphrases come from an environment variable.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pai_magic.cli.common import client_for, emit
from pai_magic.core.errors import InvalidInputError


def _key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="PATH", help="private key to use (default: the profile's ssh_key, "
                   "~/.ssh/id_ed25519, ~/.ssh/id_rsa, or pai_magic's own)")
    p.add_argument("--passphrase-env", metavar="VAR", help="environment variable holding the key's passphrase")


def _task_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", metavar="ROLE/INDEX", help="which task (default: the first role's task 0)")


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    k = subparsers.add_parser("ssh-key", help="show your SSH public key; --add puts it in your OpenPAI profile",
                              description="Show the public key pai_magic connects with (generating an ed25519 "
                                          "pair the first time none exists); --add adds it to the profile "
                                          "(PUT /users/me, keeping every existing key).")
    k.add_argument("--add", action="store_true", help="add the key to your OpenPAI profile")
    k.add_argument("--title", help="title for the key in the profile (default: pai_magic-HOSTNAME)")
    _key_options(k)
    k.set_defaults(func=run_ssh_key)

    i = subparsers.add_parser("ssh-info", help="the portal's SSH info of a job's running tasks")
    i.add_argument("name", help="job name (or USER~NAME)")
    _key_options(i)
    i.set_defaults(func=run_ssh_info)

    s = subparsers.add_parser("ssh", help="run a command in a job's task, or open a shell there",
                              description="pai-magic ssh NAME -- CMD runs CMD in the task, streaming its "
                                          "output, and exits with its status; without a command, in a "
                                          "terminal, it opens an interactive OpenSSH session.")
    s.add_argument("name", help="job name (or USER~NAME)")
    _task_option(s)
    s.add_argument("--timeout", type=float, metavar="SECONDS", help="stop the command after this long")
    s.add_argument("--print-command", action="store_true",
                   help="print the OpenSSH command line instead of running it")
    _key_options(s)
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run, e.g. -- nvidia-smi -L")
    s.set_defaults(func=run_ssh)

    u = subparsers.add_parser("upload", help="copy a local file or directory into a job's task (SFTP)")
    u.add_argument("local", help="local file or directory")
    u.add_argument("remote", metavar="NAME:REMOTE", help="job and path in the task, e.g. train:/data/in")
    _task_option(u)
    u.add_argument("--no-verify", action="store_true", help="check sizes only, not sha256")
    _key_options(u)
    u.set_defaults(func=run_upload)

    d = subparsers.add_parser("download", help="copy a file or directory out of a job's task (SFTP)")
    d.add_argument("remote", metavar="NAME:REMOTE", help="job and path in the task, e.g. train:out/model.pt")
    d.add_argument("local", help="local file or directory")
    _task_option(d)
    d.add_argument("--no-verify", action="store_true", help="check sizes only, not sha256")
    _key_options(d)
    d.set_defaults(func=run_download)


def _passphrase(args: argparse.Namespace) -> str | None:
    var = getattr(args, "passphrase_env", None)
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise InvalidInputError(f"The environment variable {var} holding the key's passphrase is not set or empty.")
    return value


def _key(args: argparse.Namespace, client: Any) -> Any:
    from pai_magic.core.ssh.keys import ensure_key

    configured = args.key or getattr(getattr(client, "profile", None), "ssh_key", None)
    return ensure_key(configured, passphrase=_passphrase(args))


def run_ssh_key(args: argparse.Namespace) -> int:
    from pai_magic.core.ssh.keys import ensure_key

    if not args.add:
        configured = args.key
        if configured is None:
            try:
                from pai_magic.core.profiles import load_profile

                configured = load_profile(getattr(args, "profile", None)).ssh_key
            except Exception:  # noqa: BLE001 - no profile yet: the default key search
                configured = None
        key = ensure_key(configured, passphrase=_passphrase(args))
        data = {"private_path": str(key.private_path), "public_key": key.public_line,
                "fingerprint": key.fingerprint, "generated": key.generated}
        emit(args, data, f"{key.public_line}\n# {key.fingerprint}  private key: {key.private_path}")
        return 0
    from pai_magic.core.ssh.tasks import add_key_to_profile

    with client_for(args) as client:
        key = _key(args, client)
        result = add_key_to_profile(client, key, title=args.title)
    verb = "Added to" if result["added"] else "Already in"
    text = (f"{verb} your OpenPAI profile as {result['title']!r}: {key.public_line}\n"
            "Jobs submitted from now on accept this key (profile keys are copied into a job at submit time).")
    emit(args, {"added": result["added"], "title": result["title"], "public_key": key.public_line,
                "fingerprint": key.fingerprint}, text)
    return 0


def run_ssh_info(args: argparse.Namespace) -> int:
    from pai_magic.core.ssh.info import ssh_info

    with client_for(args) as client:
        key_path = None
        if args.key:
            key_path = args.key
        info = ssh_info(client, args.name, key_path=key_path)
    emit(args, info.as_dict(), info.text)
    return 0


_SSH_OPTIONS = ("--task", "--timeout", "--print-command", "--key", "--passphrase-env", "--json", "--profile")


def _command_words(args: argparse.Namespace) -> list[str]:
    """The command after ``--``; options typed between NAME and ``--`` are applied too
    (argparse hands everything after NAME to the command)."""
    words = list(args.command or [])
    if "--" in words:
        cut = words.index("--")
        opts, words = words[:cut], words[cut + 1:]
    elif words and words[0].split("=", 1)[0] in _SSH_OPTIONS:
        opts, words = words, []
    else:
        opts = []
    if opts:
        from pai_magic.cli import RaisingParser

        mini = RaisingParser(prog="pai-magic ssh", add_help=False)
        mini.add_argument("--task")
        mini.add_argument("--timeout", type=float)
        mini.add_argument("--print-command", action="store_true", default=None)
        mini.add_argument("--key")
        mini.add_argument("--passphrase-env")
        mini.add_argument("--json", action="store_true", default=None)
        mini.add_argument("--profile")
        mini.add_argument("rest", nargs=argparse.REMAINDER)
        extra = mini.parse_args(opts)
        for field, value in vars(extra).items():
            if field != "rest" and value is not None:
                setattr(args, field, value)
        words = list(extra.rest) + words
    return words


def run_ssh(args: argparse.Namespace) -> int:
    from pai_magic.core.ssh.tasks import run_in_task, task_openssh_argv

    words = _command_words(args)
    command = " ".join(words) if len(words) != 1 else words[0]
    with client_for(args) as client:
        key = _key(args, client)
        if args.print_command or not words:
            interactive = not words and sys.stdin.isatty() and sys.stdout.isatty()
            if not (args.print_command or interactive):
                raise InvalidInputError("Give a command: pai-magic ssh NAME -- CMD (an interactive shell needs a "
                                        "terminal; --print-command shows the ssh command line).")
            argv = task_openssh_argv(client, args.name, task=args.task, command=command or None, key=key)
            if args.print_command:
                import shlex

                emit(args, {"argv": argv}, " ".join(shlex.quote(a) for a in argv))
                return 0
        else:
            argv = None
        if argv is None:
            def out(text: str) -> None:
                sys.stdout.write(text)
                sys.stdout.flush()

            def err(text: str) -> None:
                sys.stderr.write(text)
                sys.stderr.flush()

            status = run_in_task(client, args.name, command, task=args.task, on_stdout=out, on_stderr=err,
                                 timeout=args.timeout, key=key, passphrase=_passphrase(args))
            return status if 0 <= status < 256 else 255
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # the terminal belongs to OpenSSH from here on
    return 0  # not reached


class _TextProgress:
    """One self-rewriting stderr line in a terminal; nothing when stderr is not a terminal."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and p.bytes_done < p.bytes_total:
            return
        self._last = now
        mib = 1 << 20
        sys.stderr.write(f"\r{self.verb} {p.files_done}/{p.files_total} files, {p.bytes_done / mib:.1f} of "
                         f"{p.bytes_total / mib:.1f} MiB ({100 * p.fraction:.0f}%)  ")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _transfer(args: argparse.Namespace, direction: str) -> int:
    from pai_magic.core.ssh.tasks import download_from_task, parse_remote, upload_to_task

    spec = args.remote
    name, remote = parse_remote(spec)
    progress = _TextProgress("uploading" if direction == "upload" else "downloading")
    with client_for(args) as client:
        key = _key(args, client)
        try:
            if direction == "upload":
                result = upload_to_task(client, name, args.local, remote, task=args.task, on_progress=progress,
                                        verify=not args.no_verify, key=key, passphrase=_passphrase(args))
            else:
                result = download_from_task(client, name, remote, args.local, task=args.task,
                                            on_progress=progress, verify=not args.no_verify, key=key,
                                            passphrase=_passphrase(args))
        finally:
            progress.end()
    data = {"direction": direction, "files": [vars(f) for f in result.files], "bytes": result.bytes,
            "seconds": round(result.seconds, 3), "directories": result.directories}
    emit(args, data, result.summary())
    return 0


def run_upload(args: argparse.Namespace) -> int:
    return _transfer(args, "upload")


def run_download(args: argparse.Namespace) -> int:
    return _transfer(args, "download")
