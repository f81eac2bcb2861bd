"""``%pai_kernel install|list|remove``: Jupyter kernels that run inside an OpenPAI job.

Thin: parse, call :mod:`pai_magic.kernel.spec` (where the rules live), render. The kernelspec
names the notebook's profile (``--profile``, else the one this session chose with
``%pai_login``/``%pai_profile``/``PaiMagics.profile``, the same as every other magic), never
its token.
"""
from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument

from pai_magic.magics.args import lazy_magic_arguments, parse_line, parse_memory
from pai_magic.magics.errors import friendly
from pai_magic.magics.messages import _cli_to_magic
from pai_magic.magics.render import Table, View, esc
from pai_magic.magics.session import get_session


@magics_class
class KernelMagics(Magics):
    @lazy_magic_arguments()
    @argument("verb", choices=["install", "list", "remove"], help="what to do")
    @argument("name", nargs="?", help="kernel name, e.g. pai-gpu (install, remove)")
    @argument("--image", help="Docker image with Python and ipykernel (install)")
    @argument("--gpu", type=int, default=1, help="GPUs (default 1)")
    @argument("--cpu", type=int, default=4, help="CPUs (default 4)")
    @argument("--memory", default="16G", help="memory, e.g. 16G (default 16G)")
    @argument("--vc", help="virtual cluster (default: the profile's)")
    @argument("--storage", action="append", default=[], help="NAME[:/PATH] to mount (repeatable)")
    @argument("--profile", help="profile the kernel uses (default: the one this notebook uses)")
    @argument("--python", default="python3", help="the image's Python command (default python3)")
    @argument("--lease", type=float, help="seconds the job outlives a vanished Jupyter server (default 180)")
    @argument("--start-timeout", type=float,
              help="stop a start whose job waits longer than this for the cluster (default 900 s)")
    @line_magic
    @friendly
    def pai_kernel(self, line: str) -> Any:
        """Install, list or remove kernels that run in an OpenPAI job (shown in the launcher). Examples::

            %pai_kernel install pai-gpu --image pytorch/pytorch:latest --gpu 1
            %pai_kernel list
            %pai_kernel remove pai-gpu
        """
        args = parse_line(self.pai_kernel, line)
        from pai_magic.kernel import spec

        if args.verb == "list":
            if args.name:
                raise UsageError(f"%pai_kernel list takes no name (got {args.name!r}): it lists every OpenPAI "
                                 "kernel; remove one with %pai_kernel remove NAME.")
            rows = spec.list_kernels()
            empty = "No OpenPAI kernels installed: %pai_kernel install NAME --image IMAGE"
            return Table(["name", "display name", "profile", "image"],
                         [[r["name"], r["display_name"], r["profile"], r["image"]] for r in rows],
                         title="OpenPAI kernels", empty=empty)
        if not args.name:
            raise UsageError(f"%pai_kernel {args.verb}: give the kernel's name, e.g. %pai_kernel {args.verb} pai-gpu.")
        if args.verb == "remove":
            row = spec.remove_kernel(args.name)
            return View(f"Removed kernel {row['name']}.", f"Removed kernel <b>{esc(row['name'])}</b>.")
        if not args.image:
            raise UsageError("%pai_kernel install: give --image, e.g. --image pytorch/pytorch:latest "
                             "(its Python needs ipykernel).")
        # the profile this notebook talks to, not the profile file's active one (another kernel or
        # the CLI may have moved it): the kernel must reach the cluster the person is working with
        profile = args.profile or get_session(self.shell).wanted_profile_name() or ""
        settings = spec.KernelSettings(
            image=args.image, profile=profile, gpu=args.gpu, cpu=args.cpu,
            memory_mb=parse_memory(args.memory) or 0, virtual_cluster=args.vc or "", storages=list(args.storage),
            python=args.python,
            lease_seconds=args.lease if args.lease is not None else spec.DEFAULT_LEASE_SECONDS,
            **({} if args.start_timeout is None else {"start_timeout": args.start_timeout}))
        result = spec.install_kernel(args.name, settings)
        verb = "Replaced" if result.get("replaced") else "Installed"
        text = f"{verb} kernel {result['name']}: \"{result['display_name']}\". Pick it in the JupyterLab launcher."
        html_text = (f"{verb} kernel <b>{esc(result['name'])}</b>: “{esc(result['display_name'])}”. "
                     "Pick it in the JupyterLab launcher.")
        for warning in result.get("warnings") or []:  # installed anyway (offline is fine): said once
            warning = _cli_to_magic(warning)
            text += f"\nWarning: {warning}"
            html_text += f"<div style='color:#9a6700'>Warning: {esc(warning)}</div>"
        return View(text, html_text)
