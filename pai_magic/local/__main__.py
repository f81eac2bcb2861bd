"""``python -m pai_magic.local``: run the embedded backend in the foreground.

Prints exactly one line, the cluster URL, once the server answers (scripts and the test
fixture read it); the password never appears on the terminal.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pai_magic.local.server import default_data_dir, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pai_magic.local",
                                     description="Run the embedded OpenPAI backend (REST API + local job runner).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
    parser.add_argument("--data-dir", default=None, help=f"state folder (default {default_data_dir()})")
    parser.add_argument("--user", default=None, help="user to create (default: your login name)")
    parser.add_argument("--password-env", default=None, metavar="VAR",
                        help="environment variable holding that user's password (default: generated, "
                             "saved 0600 in the data dir)")
    parser.add_argument("--mount-root", action="append", default=[], metavar="DIR",
                        help="a folder under which jobs may have their storages linked at an absolute mountPath "
                             "(repeatable; default none: storages are in the task's folder and at "
                             "$PAI_STORAGE_<NAME>_PATH)")
    parser.add_argument("--job-user", default=None, metavar="per-user|ACCOUNT|root",
                        help="when run as root, who jobs run as: one unprivileged uid per user (per-user, the "
                             "default; also PAI_LOCAL_JOB_USER), an existing account, or root (no isolation)")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument("--rate-limit", nargs="?", const="on", default=None, metavar="API,LIST,SUBMIT",
                        help="answer 429 like OpenPAI's rest-server (default numbers 600,120,3600; "
                             "also PAI_LOCAL_RATE_LIMIT=on)")
    parser.add_argument("--gpus", type=int, default=0, metavar="N",
                        help="GPUs to count (none is real): a job asking more than are free waits until others "
                             "end, as on a full cluster (default 0: jobs asking GPUs run at once, without them)")
    args = parser.parse_args(argv)
    if args.rate_limit is not None:
        from pai_magic.local.ratelimit import ENV_VAR, RateLimits

        try:
            RateLimits.parse(args.rate_limit)
        except ValueError as exc:
            parser.error(str(exc))
        os.environ[ENV_VAR] = args.rate_limit  # read where the server is built, like a config value
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    password = None
    scrub: tuple[str, ...] = ()
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            print(f"error: environment variable {args.password_env} is empty or unset; export the password there",
                  file=sys.stderr)
            return 2
        scrub = (args.password_env,)
    try:
        serve(args.host, args.port, args.data_dir, user=args.user, password=password,
              on_ready=lambda url: print(url, flush=True), scrub_env=scrub,
              mount_roots=tuple(Path(p) for p in args.mount_root), job_user=args.job_user, gpus=args.gpus)
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
