"""``pai-magic storage``, ``mount`` and ``umount``: the cluster's storages on this machine.

Thin: parse, call one function of :mod:`pai_magic.core.storage.manage`, print. ``mount``
with no argument lists what pai_magic mounted and the NFS/sshfs shares in place.
"""
from __future__ import annotations

import argparse
import sys

from pai_magic.cli.common import client_for, emit, profile_name, wants_json
from pai_magic.core.errors import PaiError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    s = subparsers.add_parser(
        "storage", help="list the cluster's storages, probe or measure them",
        description="The cluster's storages (type, server, path, read-only, default) and, for NFS, the "
                    "command that mounts each one.")
    s.add_argument("name", nargs="?", help="one storage (default: all you may use)")
    s.add_argument("--check", action="store_true", help="probe that the NFS server answers and exports the path")
    s.add_argument("--usage", action="store_true", help="used and free space where the storage is mounted here")
    s.add_argument("--warn-above", type=float, default=0.9, metavar="FRACTION",
                   help="warn when a share is fuller than this (default 0.9)")
    s.set_defaults(func=run_storage)

    m = subparsers.add_parser(
        "mount", help="mount an NFS share or a cluster storage (kernel NFS, or sshfs through a job)",
        description="mount SERVER:/PATH MOUNTPOINT | mount --storage NAME MOUNTPOINT | mount (list). "
                    "Kernel NFS needs root or password-less sudo; otherwise the storage is mounted "
                    "without root through a job with sshfs.")
    m.add_argument("args", nargs="*", metavar="[SERVER:/PATH] MOUNTPOINT")
    m.add_argument("--storage", metavar="NAME", help="mount this cluster storage (server and path from the cluster)")
    m.add_argument("-o", "--options", metavar="OPTS", help="NFS mount options (default nfsvers=4.1)")
    m.add_argument("--via-job", metavar="JOB", help="mount through this running job (sshfs), which mounts the storage")
    way = m.add_mutually_exclusive_group()
    way.add_argument("--rootless", dest="rootless", action="store_const", const=True, default=None,
                     help="always mount through a job with sshfs")
    way.add_argument("--kernel", dest="rootless", action="store_const", const=False,
                     help="only the kernel NFS mount (no sshfs fallback)")
    m.add_argument("--dry-run", action="store_true", help="print the exact commands, shell-quoted, and run nothing")
    m.add_argument("--mkdir-personal", action="store_true", help="create your own folder (mode 0700) on the share")
    m.add_argument("--mode", default="700", help="mode of the personal folder (octal, default 700)")
    m.set_defaults(func=run_mount)

    u = subparsers.add_parser("umount", help="unmount a share (and stop the helper job pai_magic started for it)")
    u.add_argument("mountpoint")
    u.add_argument("--dry-run", action="store_true", help="print the command and run nothing")
    u.set_defaults(func=run_umount)


def run_storage(args: argparse.Namespace) -> int:
    from pai_magic.core.storage.manage import describe_storages, format_views

    views = describe_storages(client_for(args), args.name, check=args.check, usage=args.usage,
                              warn_above=args.warn_above)
    emit(args, [v.as_dict() for v in views], lambda: format_views(views, usage=args.usage))
    failed = args.check and any(v.check is not None and not v.check.ok for v in views)
    warned = args.usage and any(u.warn for v in views for u in v.usage)
    return 1 if failed or warned else 0


def _optional_client(args: argparse.Namespace):
    try:
        return client_for(args)
    except PaiError:
        return None


def run_mount(args: argparse.Namespace) -> int:
    from pai_magic.core.storage import manage
    from pai_magic.core.storage.usage import parse_mode

    if not args.args and not args.storage and not args.via_job:
        rows = manage.mounts()
        emit(args, [r.as_dict() for r in rows], manage.mounts_text)
        return 0
    source, mountpoint = manage.mount_arguments(args.args)
    if args.storage or args.via_job:
        client = client_for(args)
    else:  # a plain SERVER:/PATH needs no cluster; the personal folder wants its user name
        client = _optional_client(args) if args.mkdir_personal else None

    def status(text: str) -> None:
        if not wants_json(args):
            sys.stderr.write(f"{text}\n")

    outcome = manage.mount(mountpoint, client=client, source=source, storage=args.storage, options=args.options,
                           via_job=args.via_job, rootless=args.rootless, dry_run=args.dry_run,
                           mkdir_personal=args.mkdir_personal, personal_mode=parse_mode(args.mode),
                           profile=profile_name(args), on_status=status)
    if args.dry_run:
        emit(args, outcome.as_dict(), lambda: "\n".join(outcome.result.shell_lines + [f"# {outcome.message}"]))
    else:
        emit(args, outcome.as_dict(), outcome.message)
    return 0


def run_umount(args: argparse.Namespace) -> int:
    from pai_magic.core.storage import manage

    def factory(profile: str | None):
        from pai_magic.core.client import PaiClient
        from pai_magic.core.profiles import load_profile

        return PaiClient(load_profile(profile or profile_name(args)))

    result = manage.umount(args.mountpoint, dry_run=args.dry_run, client_factory=factory)
    data = {"mountpoint": result.mountpoint, "source": result.source, "kind": result.kind, "dry_run": result.dry_run,
            "already": result.already, "job": result.job, "commands": result.shell_lines, "message": result.message}
    text = "\n".join(result.shell_lines) if args.dry_run else result.message
    emit(args, data, text)
    return 0
