"""``%pai_storage``, ``%pai_mount``, ``%pai_umount``: the cluster's storages from a notebook.

Thin: parse the line, call one function of :mod:`pai_magic.core.storage.manage`, return a
:class:`View`. Errors are one-line ``UsageError``s through ``@friendly``.
"""
from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from pai_magic.magics.args import parse_line
from pai_magic.magics.errors import friendly
from pai_magic.magics.render import View
from pai_magic.magics.session import get_session


@magics_class
class StorageMagics(Magics):
    """Cluster storages: list, probe, mount (kernel NFS or sshfs through a job), unmount."""

    @magic_arguments()
    @argument("name", nargs="?", help="one storage (default: all you may use), e.g. confignfs")
    @argument("--check", action="store_true", help="probe that the NFS server answers and exports the path")
    @argument("--usage", action="store_true", help="used and free space where the storage is mounted here")
    @argument("--warn-above", type=float, default=0.9, help="warn above this fraction used (default 0.9)")
    @line_magic
    @friendly
    def pai_storage(self, line: str) -> View:
        """The cluster's storages with the command that mounts each. Example: ``%pai_storage --check``"""
        args = parse_line(self.pai_storage, line)
        from pai_magic.core.storage.manage import describe_storages, format_views

        views = describe_storages(get_session(self.shell).client(), args.name, check=args.check, usage=args.usage,
                                  warn_above=args.warn_above)
        return View(format_views(views, usage=args.usage))

    @magic_arguments()
    @argument("args", nargs="*", help="[SERVER:/PATH] MOUNTPOINT (nothing: list the mounts)")
    @argument("--storage", help="mount this cluster storage, e.g. --storage confignfs")
    @argument("-o", "--options", help="NFS mount options (default nfsvers=4.1), e.g. -o nfsvers=3,ro")
    @argument("--via-job", help="mount through this running job with sshfs, e.g. --via-job train_x1")
    @argument("--rootless", action="store_true", help="always mount through a job with sshfs (no root needed)")
    @argument("--kernel", action="store_true", help="only the kernel NFS mount, no sshfs fallback")
    @argument("--dry-run", action="store_true", help="show the exact commands, shell-quoted, and run nothing")
    @argument("--mkdir-personal", action="store_true", help="create your own folder (mode 0700) on the share")
    @argument("--mode", default="700", help="mode of the personal folder (octal), e.g. --mode 750")
    @line_magic
    @friendly
    def pai_mount(self, line: str) -> View:
        """Mount an NFS share or a cluster storage. Examples::

            %pai_mount 10.0.0.1:/data ~/data --dry-run
            %pai_mount --storage confignfs ~/data --mkdir-personal
            %pai_mount            (what is mounted)
        """
        args = parse_line(self.pai_mount, line)
        from pai_magic.core.storage import manage
        from pai_magic.core.storage.usage import parse_mode

        if args.rootless and args.kernel:
            raise UsageError("%pai_mount: choose --rootless or --kernel, not both.")
        if not args.args and not args.storage and not args.via_job:
            return View(manage.mounts_text())
        source, mountpoint = manage.mount_arguments(args.args)
        session = get_session(self.shell)
        client: Any = None
        if args.storage or args.via_job or args.mkdir_personal:
            try:
                client = session.client()
            except Exception:
                if args.storage or args.via_job:
                    raise
        rootless = True if args.rootless else False if args.kernel else None
        outcome = manage.mount(mountpoint, client=client, source=source, storage=args.storage, options=args.options,
                               via_job=args.via_job, rootless=rootless, dry_run=args.dry_run,
                               mkdir_personal=args.mkdir_personal, personal_mode=parse_mode(args.mode),
                               profile=session.wanted_profile_name(), on_status=lambda text: print(text, flush=True))
        if args.dry_run:
            return View("\n".join(outcome.result.shell_lines + [f"# {outcome.message}"]))
        return View(outcome.message)

    @magic_arguments()
    @argument("mountpoint", help="the folder to unmount, e.g. ~/data")
    @argument("--dry-run", action="store_true", help="show the command and run nothing")
    @line_magic
    @friendly
    def pai_umount(self, line: str) -> View:
        """Unmount a share; a helper job pai_magic started for it is stopped. Example: ``%pai_umount ~/data``"""
        args = parse_line(self.pai_umount, line)
        from pai_magic.core.storage import manage

        session = get_session(self.shell)

        def factory(profile: str | None):
            from pai_magic.core.client import PaiClient
            from pai_magic.core.profiles import load_profile

            return PaiClient(load_profile(profile)) if profile else session.client()

        result = manage.umount(args.mountpoint, dry_run=args.dry_run, client_factory=factory)
        return View("\n".join(result.shell_lines) if args.dry_run else result.message)
