"""Overhead of a notebook job on the embedded backend vs papermill running the same notebook here.

Both sides execute the same parameterised notebook (a few small cells) with a python3 kernel;
the job side adds everything a notebook job costs: building and submitting the job, waiting
for the task, one SSH session to upload the notebook and the runner, progress polling, the
fetch of the executed copy and the job's end. Rounds alternate the two sides so machine noise
hits both alike; medians are compared. Goal: job <= 1.5 x papermill + 1 s.

Run: ``python bench/bench_notebook_job.py [--rounds 5]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CELLS = ["import math, json", "xs = [math.sqrt(i) for i in range(100000)]\nprint(len(xs), lr)",
         "print(json.dumps({'lr': lr, 'sum': round(sum(xs), 2)}))", "for i in range(3):\n    print('step', i)"]


def notebook(path: Path) -> Path:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]}, "outputs": [],
              "source": "lr = 1.0"}]
    cells += [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
              for s in CELLS]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))
    return path


def run_papermill(nb: Path, out: Path) -> float:
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(str(nb), str(out), parameters={"lr": 0.1}, kernel_name="python3",
                               progress_bar=False, log_output=False)
    return time.perf_counter() - start


def run_job(client, nb: Path, out_root: Path) -> float:
    from pai_magic.core.notebook import NotebookRunSpec, run_notebook

    start = time.perf_counter()
    result = run_notebook(client, NotebookRunSpec(notebook=str(nb), image="python:3.11", parameters={"lr": 0.1},
                                                  out_root=str(out_root)))
    elapsed = time.perf_counter() - start
    if result.state != "SUCCEEDED":
        raise SystemExit(f"the job did not succeed: {result}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(PAI_MAGIC_CONFIG_DIR=str(root / "cfg"), PAI_MAGIC_DATA_DIR=str(root / "data"),
                          HOME=str(root / "home"))
        (root / "home").mkdir()
        # the runner uses this machine's Python, which may sit in root's private home (see bench/_backend.py)
        os.environ.setdefault("PAI_LOCAL_JOB_USER", "root")
        from pai_magic.core.client import PaiClient
        from pai_magic.local.connect import connect_local, stop_started

        conn = connect_local(root / "backend", profile_name="bench")
        try:
            client = PaiClient(conn.profile)
            nb = notebook(root / "bench.ipynb")
            run_papermill(nb, root / "warm.ipynb")  # warm caches (imports, kernelspec lookup) for both
            run_job(client, nb, root / "runs")
            local, job = [], []
            for i in range(args.rounds):
                local.append(run_papermill(nb, root / f"pm-{i}.ipynb"))
                job.append(run_job(client, nb, root / "runs"))
            pm, nj = statistics.median(local), statistics.median(job)
            goal = 1.5 * pm + 1.0
            print(f"papermill here (median of {args.rounds}): {pm:.2f} s  {[round(x, 2) for x in local]}")
            print(f"notebook job on the embedded backend:   {nj:.2f} s  {[round(x, 2) for x in job]}")
            print(f"ratio job/papermill: {nj / pm:.2f}x; overhead {nj - pm:.2f} s; goal <= 1.5x + 1 s = {goal:.2f} s: "
                  f"{'met' if nj <= goal else 'NOT met'}")
        finally:
            stop_started()


if __name__ == "__main__":
    main()
