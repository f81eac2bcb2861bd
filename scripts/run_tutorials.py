"""Execute tutorial notebooks as a user would, each in a fresh kernel, and report.

Why a script and not `jupyter nbconvert --execute`: one line per notebook with the cell that
failed and its one-line error is what a person running the demo needs, not a traceback dump.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError


def run(path: Path, out_dir: Path, timeout: int) -> bool:
    """Execute ``path`` with ``out_dir`` as its working folder, so whatever the tutorial writes
    (archives, downloads, mount points) lands beside the executed copy, not in the repository."""
    nb = nbformat.read(path, as_version=4)
    # the tutorial's own kernel talks over Unix sockets, so it never races the embedded backend and
    # the kernel tutorial's port forwards for a free TCP port
    ipc = tempfile.mkdtemp(prefix="pai-tutorial-kernel-")
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(ipc) / "kernel"))
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(out_dir.resolve())}})
    start = time.monotonic()
    ok = True
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:  # a timeout too: one line, and the next tutorial runs
        ok = False
        last = [line for line in str(exc).strip().splitlines() if line.strip()][-1:]
        print(f"FAILED  {path.name}: {last[0] if last else exc}")
    finally:
        # nbclient shuts down only a kernel manager it made itself: end ours, or each tutorial's
        # kernel lingers until its parent poller sees this script gone
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=False)
        nbformat.write(nb, out_dir / path.name)
        shutil.rmtree(ipc, ignore_errors=True)
    if ok:
        print(f"ok      {path.name} ({time.monotonic() - start:.1f} s)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the executed copies")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = [run(nb, args.out, args.timeout) for nb in args.notebooks if nb.exists()]
    print(f"{sum(results)} of {len(results)} tutorials ran; executed copies in {args.out}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
