"""Widget models held by the ipywidgets panel over refresh cycles, against the embedded backend.

The old panel made new row widgets on every refresh and never closed the old ones (one panel
went from 76 to 1,126 models in 30 s; a kernel holding panels for 12 minutes had 22,427, and
Submit took 23 s instead of 0.5 s). The panel now keeps a fixed set of widgets. This prints the
number of widget models in the kernel at 0, 50 and 100 refresh cycles (with a full page of
jobs and a job's detail and log open, so every part that is re-rendered is exercised), the
growth per cycle, and the ratio to the baseline measured in the same run: the models right
after the panel was built. Goal: ratio 1.00 (growth 0 per cycle), and 0 models after close().

Run: ``python bench/bench_panel_memory.py [--cycles 100] [--jobs 25]``. Exits 1 if models grew.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=25)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        os.environ["PAI_MAGIC_CONFIG_DIR"] = os.path.join(tmp, "cfg")
        os.environ["PAI_MAGIC_DATA_DIR"] = os.path.join(tmp, "data")
        from pai_magic.core.jobs import submit_job
        from pai_magic.core.protocol import JobSpec, build_protocol
        from pai_magic.local.connect import connect_local, stop_started
        from pai_magic.widgets.jobs_panel import PaiPanel, widget_count

        try:
            profile = connect_local(os.path.join(tmp, "local")).profile
            from pai_magic.core.client import PaiClient

            with PaiClient(profile) as client:
                names = [submit_job(client, build_protocol(JobSpec(name=f"bench{i}", image="ubuntu:22.04",
                                                                   commands=[f"echo job {i}"])))
                         for i in range(args.jobs)]
                deadline = time.monotonic() + 120
                while client.get_job(names[-1]).state not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
                    time.sleep(0.2)

            before = widget_count()
            panel = PaiPanel(refresh_interval=None)
            panel.select(f"{profile.user}~{names[-1]}")
            baseline = widget_count()
            counts: dict[int, int] = {}
            start = time.perf_counter()
            for cycle in range(args.cycles + 1):
                if cycle in (0, args.cycles // 2, args.cycles):
                    counts[cycle] = widget_count()
                if cycle < args.cycles:
                    panel.refresh()
            per_refresh = (time.perf_counter() - start) / max(1, args.cycles)
            panel.close()
            after_close = widget_count() - before
        finally:
            stop_started()

    growth = (counts[args.cycles] - counts[0]) / max(1, args.cycles)
    print(f"panel models after construction (baseline): {baseline - before}")
    for cycle, count in counts.items():
        print(f"cycle {cycle:4d}: {count} widget models in the kernel")
    print(f"growth per refresh cycle: {growth:.2f} models (old panel: a new row set per refresh)")
    print(f"ratio models@{args.cycles} / baseline: {counts[args.cycles] / baseline:.2f}")
    print(f"models left after close(): {after_close}")
    print(f"time per refresh: {per_refresh * 1000:.1f} ms ({len(panel.jobs)} rows, detail and log open)")
    return 0 if growth == 0 and after_close == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
