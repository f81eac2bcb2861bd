"""``pai-magic local``: run the embedded OpenPAI backend in the foreground (Ctrl-C stops it).

With ``--write-profile`` it also logs in once it answers and saves an active profile for
it (default name ``local``), so ``pai-magic jobs`` / ``%pai_jobs`` work right away. The
password comes from ``--password-env`` or is the one the backend generated and keeps 0600
in its data directory; it is never printed.
"""
from __future__ import annotations

import argparse
import json
import getpass
import os
import sys
import threading
from pathlib import Path

from pai_magic.core.errors import InvalidInputError, PaiError, UnreachableError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = subparsers.add_parser(
        "local", help="run the embedded OpenPAI backend (jobs run as local processes)",
        description="Run the embedded backend in the foreground. It prints its URL once it answers.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    p.add_argument("--data-dir", help="state folder (default: PAI_MAGIC_DATA_DIR/local)")
    p.add_argument("--user", help="user to create (default: your login name)")
    p.add_argument("--password-env", metavar="VAR",
                   help="environment variable holding the user's password (default: generated and kept 0600)")
    p.add_argument("--mount-root", action="append", default=[], metavar="DIR",
                   help="a folder under which jobs may have storages linked at an absolute mountPath (repeatable)")
    p.add_argument("--job-user", default=None, metavar="per-user|ACCOUNT|root",
                   help="when run as root, who jobs run as (default per-user: one unprivileged uid per user; "
                        "also PAI_LOCAL_JOB_USER)")
    p.add_argument("--write-profile", action="store_true",
                   help="log in and save an active profile for this backend")
    p.add_argument("--profile", metavar="NAME", default=None, help="name of that profile (default: local)")
    p.add_argument("--log-level", default="WARNING", help="server log level (default WARNING)")
    p.add_argument("--rate-limit", nargs="?", const="on", default=None, metavar="API,LIST,SUBMIT",
                   help="answer 429 like OpenPAI's rest-server (numbers per min, per min, per hour; "
                        "default 600,120,3600; also PAI_LOCAL_RATE_LIMIT=on)")
    p.add_argument("--gpus", type=int, default=0, metavar="N",
                   help="GPUs to count (none is real): a job asking more than are free waits until others end, "
                        "as on a full cluster (default 0: jobs asking GPUs run at once, without them)")
    p.set_defaults(func=run_local)


def _default_user() -> str:
    from pai_magic.local import backend

    return backend._login_name()  # noqa: SLF001 - the backend's own rule for the default user


def _write_profile(url: str, data_dir: Path, user: str | None, password: str | None, name: str) -> dict:
    """Log in to the fresh backend (a real HTTP login) and save the token as an active profile."""
    from pai_magic.core.auth import login_with_password
    from pai_magic.local.backend import read_credentials

    if password is None:
        saved = read_credentials(data_dir)
        if saved is None or (user and saved[0] != user):
            raise InvalidInputError(f"No saved password for {user or 'the default user'} in {data_dir}: "
                                    "pass --password-env VAR.")
        user, password = saved
    prof = login_with_password(url, user or _default_user(), password, profile_name=name)
    return prof.public_dict()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_local(args: argparse.Namespace) -> int:
    import logging

    from pai_magic.local.server import default_data_dir, serve

    if args.profile and not args.write_profile:
        raise InvalidInputError("--profile goes with --write-profile.")
    password = None
    scrub: tuple[str, ...] = ()
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise InvalidInputError(f"The environment variable {args.password_env} is empty or unset: "
                                    "export the password there.")
        scrub = (args.password_env,)
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    if not _is_loopback(args.host):
        # jobs are shell commands run as this user: on a network address, whoever logs in runs them here
        print(f"pai-magic: warning: listening on {args.host}, not loopback: anyone who can log in to this "
              f"backend runs commands on this machine as {getpass.getuser()}.", file=sys.stderr, flush=True)
    logging.basicConfig(level=str(args.log_level).upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    as_json = bool(getattr(args, "json", False))

    def announce(url: str) -> None:
        if not as_json:
            print(url, flush=True)
        if not args.write_profile:
            if as_json:
                print(json.dumps({"url": url, "data_dir": str(data_dir), "profile": None}), flush=True)
            return

        def login() -> None:  # off the server's loop: the login is an HTTP call to this server
            try:
                prof = _write_profile(url, data_dir, args.user, password, args.profile or "local")
            except PaiError as exc:
                sys.stderr.write(f"pai-magic: the backend runs, but no profile was written: {exc}\n")
                sys.stderr.flush()
                return
            if as_json:
                print(json.dumps({"url": url, "data_dir": str(data_dir), "profile": prof}), flush=True)
            else:
                sys.stderr.write(f"Profile {prof['name']!r} (active) logs in to {url} as {prof['user']}.\n")
                sys.stderr.flush()

        threading.Thread(target=login, name="pai-magic-local-login", daemon=True).start()

    if getattr(args, "rate_limit", None) is not None:
        from pai_magic.local.ratelimit import ENV_VAR, RateLimits

        try:
            RateLimits.parse(args.rate_limit)
        except ValueError as exc:
            raise InvalidInputError(f"--rate-limit: {exc}.") from None
        os.environ[ENV_VAR] = args.rate_limit  # read where the server is built, like a config value
    try:
        serve(args.host, args.port, data_dir, user=args.user, password=password, on_ready=announce,
              scrub_env=scrub, mount_roots=tuple(Path(d) for d in getattr(args, "mount_root", []) or []),
              job_user=getattr(args, "job_user", None), gpus=getattr(args, "gpus", 0))
    except ValueError as exc:
        raise InvalidInputError(f"Cannot start the backend: {' '.join(str(exc).split())}.") from None
    except OSError as exc:
        raise UnreachableError(f"Cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                               "(choose another --port).") from None
    return 0
