"""``pai-magic kernel install|list|remove``: Jupyter kernels that run inside an OpenPAI job.

Thin: parse, call :mod:`pai_magic.kernel.spec`, print. The kernelspec names a profile (the
global ``--profile``, default the active one), never a token.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from pai_magic.cli.common import emit, profile_name, table
from pai_magic.core.jobform import parse_memory_mb
from pai_magic.cli.examples import add_examples
from pai_magic.core.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    k = subparsers.add_parser("kernel", help="install, list or remove Jupyter kernels that run in an OpenPAI job",
                              description="A kernel installed here shows in the JupyterLab launcher (and in "
                                          "VS Code, jupyter console, nbclient): starting it submits a job with "
                                          "these resources and runs the notebook's cells in it.")
    k.set_defaults(func=run_kernel)
    sub = k.add_subparsers(dest="kernel_verb", metavar="{install,list,remove}", parser_class=type(k))
    i = sub.add_parser("install", help="install a kernelspec for an OpenPAI job")
    i.add_argument("name", help="kernel name, e.g. pai-gpu")
    i.add_argument("--image", required=True, help="Docker image with Python and ipykernel")
    i.add_argument("--gpu", type=int, default=1, help="GPUs (default 1)")
    i.add_argument("--cpu", type=int, default=4, help="CPUs (default 4)")
    i.add_argument("--memory", default="16G", help="memory, e.g. 16G or 8192 (MB); default 16G")
    i.add_argument("--vc", metavar="VC", help="virtual cluster (default: the profile's)")
    i.add_argument("--storage", action="append", default=[], metavar="NAME[:/PATH]",
                   help="storage to mount (repeatable)")
    i.add_argument("--python", default="python3", metavar="CMD", help="the image's Python (default python3)")
    i.add_argument("--lease", type=float, metavar="SECONDS",
                   help="end the job this long after the Jupyter server stops renewing (default 180)")
    i.add_argument("--start-timeout", type=float, metavar="SECONDS",
                   help="stop a start whose job waits longer than this for the cluster (default 900)")
    i.set_defaults(kernel_func=run_install)
    li = sub.add_parser("list", help="the installed OpenPAI kernels")
    li.set_defaults(kernel_func=run_list)
    r = sub.add_parser("remove", help="remove an OpenPAI kernel")
    r.add_argument("name", help="kernel name")
    r.set_defaults(kernel_func=run_remove)
    for parser in (i, li, r):
        _common(parser)
        add_examples(parser, "kernel")


def _common(parser: argparse.ArgumentParser) -> None:
    """The frame adds ``--json``/``--profile`` to top-level verbs; these are one level down."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print machine-readable JSON on stdout")
    parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="NAME",
                        help="profile the kernel uses (default: the active one)")
    parser.add_argument("--request-timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="give up on the cluster after this long per request (default 30)")


def run_kernel(args: argparse.Namespace) -> int:
    func = getattr(args, "kernel_func", None)
    if func is None:
        raise InvalidInputError("pai-magic kernel: choose install, list or remove "
                                "(see `pai-magic kernel --help`).")
    return int(func(args) or 0)


def run_install(args: argparse.Namespace) -> int:
    from pai_magic.kernel.spec import DEFAULT_LEASE_SECONDS, KernelSettings, install_kernel

    settings = KernelSettings(image=args.image, profile=profile_name(args) or "", gpu=args.gpu, cpu=args.cpu,
                              memory_mb=parse_memory_mb(args.memory), virtual_cluster=args.vc or "",
                              storages=list(args.storage), python=args.python,
                              lease_seconds=args.lease if args.lease is not None else DEFAULT_LEASE_SECONDS,
                              **({} if args.start_timeout is None else {"start_timeout": args.start_timeout}))
    result = install_kernel(args.name, settings)
    for warning in result["warnings"]:  # installed anyway (offline is fine): said once, on stderr
        sys.stderr.write(f"pai-magic: warning: {warning}\n")
    verb = "Replaced" if result.get("replaced") else "Installed"  # same name again: new settings, said so
    emit(args, result, f"{verb} kernel {result['name']}: \"{result['display_name']}\" ({result['path']}). "
                       "Pick it in the JupyterLab launcher.")
    return 0


def _rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No OpenPAI kernels installed: pai-magic kernel install NAME --image IMAGE"
    return table([(r["name"], r["display_name"], r["profile"], r["image"]) for r in rows],
                 ("NAME", "DISPLAY NAME", "PROFILE", "IMAGE"))


def run_list(args: argparse.Namespace) -> int:
    from pai_magic.kernel.spec import list_kernels

    rows = list_kernels()
    emit(args, {"items": rows}, lambda: _rows(rows))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from pai_magic.kernel.spec import remove_kernel

    row = remove_kernel(args.name)
    emit(args, {"removed": row["name"], "path": row["path"]}, f"Removed kernel {row['name']}.")
    return 0
