"""``pai-magic vcs``: the virtual clusters, their GPUs free and in use, and which are yours.

Thin: one call of :func:`pai_magic.core.virtual_clusters.vc_usage`, printed as a table (or JSON).
"""
from __future__ import annotations

import argparse

from pai_magic.cli.common import client_for, emit, table


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    v = subparsers.add_parser(
        "vcs", help="virtual clusters: GPUs free and in use, vCPUs, memory, whether you may submit there",
        description="The cluster's virtual clusters with the resources in use out of the total, as the portal's "
                    "home page shows them: where a job asking for GPUs can start now.")
    v.set_defaults(func=run_vcs)


def run_vcs(args: argparse.Namespace) -> int:
    from pai_magic.core.virtual_clusters import NO_VCS, VC_COLUMNS, vc_usage

    with client_for(args) as client:
        rows = vc_usage(client)
    emit(args, {"virtual_clusters": [r.as_dict() for r in rows]},
         lambda: table([r.cells() for r in rows], VC_COLUMNS) if rows else NO_VCS)
    return 0
