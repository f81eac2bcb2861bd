"""A kernel in an OpenPAI job (the embedded backend) against a local ipykernel, same run.

Both kernels are started and driven by jupyter_client's AsyncKernelManager, the way a Jupyter
server does: the local one with the default provisioner, the remote one from a pai-magic
kernelspec (a job, one SSH transport carrying the five ZMQ ports, CurveZMQ). Measured:

- start: ``start_kernel`` until the first ``kernel_info`` reply, once the process has started
  one kernel of that kind (``start_cold``, the first, also pays for importing the manager's
  code, which a Jupyter server pays once);
- execute round trip of ``pass`` (200 runs): median and p90;
- interrupt latency: an interrupt request while ``time.sleep(100)`` runs, to the error reply;
- an 8 MB output (``print('x' * 8_000_000)``) until the kernel is idle;
- shutdown: ``shutdown_kernel`` until the job is STOPPED (remote only).

Goals (issue 9): start <= 1.5x local; round trip median <= 1.3x local and p90 < 10 ms;
interrupt <= 50 ms; shutdown to STOPPED <= 1 s; 8 MB output <= 2x local.

Run: ``python bench/bench_remote_kernel.py [--runs 200]``
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._backend import start_backend  # noqa: E402

PREFIX = "/rest-server/api/v2"
USER, PASSWORD = "bench", "bench-password"


async def cold_start(kernel_name: str) -> float:
    """The first kernel a process starts also pays for importing its manager's code (for the
    remote kernel: paramiko, cryptography, the REST client); a Jupyter server pays that once."""
    km, kc, elapsed = await started(kernel_name)
    kc.stop_channels()
    await km.shutdown_kernel()
    return elapsed


async def started(kernel_name: str) -> tuple[Any, Any, float]:
    """A started kernel, its client with channels open, and the seconds until it was ready."""
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=kernel_name)
    t0 = time.perf_counter()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc, time.perf_counter() - t0


async def measure(kernel_name: str, runs: int, job_state: Any = None) -> dict[str, float]:
    out: dict[str, float] = {}
    km, kc, out["start"] = await started(kernel_name)
    for _ in range(10):
        await kc.execute_interactive("pass", store_history=False, timeout=60)
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        await kc.execute_interactive("pass", store_history=False, timeout=60)
        samples.append(time.perf_counter() - t)
    samples.sort()
    out["rt_median"] = statistics.median(samples)
    out["rt_p90"] = samples[int(len(samples) * 0.9) - 1]
    # interrupt (message mode, as in the kernelspec): one warm-up (the manager's control
    # socket connects on first use), then the median of 3. (Stock ipykernel 7.4 sometimes
    # wedges after a few interrupts in a row, local or remote: the next cell never runs.)
    latencies = []
    for _ in range(4):
        kc.execute("import time; print('sleeping', flush=True); time.sleep(100)")
        try:
            while (await kc.get_iopub_msg(timeout=60))["msg_type"] != "stream":
                pass
        except Exception:
            raise SystemExit(f"{kernel_name}: no output of the sleeping cell within 60 s (round {len(latencies)}); "
                             "the kernel wedged after an interrupt: run the bench again") from None
        await asyncio.sleep(0.2)  # an interrupt that lands before the sleep can wedge ipykernel
        t = time.perf_counter()
        await km.interrupt_kernel()
        while (await kc.get_shell_msg(timeout=60))["msg_type"] != "execute_reply":
            pass
        latencies.append(time.perf_counter() - t)
    out["interrupt"] = statistics.median(latencies[1:])
    big = []
    for _ in range(3):
        t = time.perf_counter()
        await kc.execute_interactive("print('x' * 8_000_000)", store_history=False, timeout=120,
                                     output_hook=lambda m: None)
        big.append(time.perf_counter() - t)
    out["output_8mb"] = statistics.median(big)
    kc.stop_channels()
    job = getattr(getattr(km.provisioner, "_job", None), "job", None)
    t = time.perf_counter()
    await km.shutdown_kernel()
    if job and job_state is not None:
        while job_state(job) != "STOPPED":
            await asyncio.sleep(0.01)
        out["shutdown_to_stopped"] = time.perf_counter() - t
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as tmp:
        root = Path(tmp)
        os.environ.update(PAI_MAGIC_CONFIG_DIR=str(root / "pai-config"), JUPYTER_DATA_DIR=str(root / "jdata"),
                          JUPYTER_PATH=str(root / "jdata"), JUPYTER_RUNTIME_DIR=str(root / "jruntime"))
        proc, url = start_backend(root / "backend", USER, PASSWORD)
        try:
            api = url + PREFIX
            token = requests.post(f"{api}/authn/basic/login", json={"username": USER, "password": PASSWORD},
                                  timeout=30).json()["token"]
            from pai_magic.core.profiles import Profile, save_profile
            from pai_magic.kernel.spec import KernelSettings, install_kernel

            save_profile(Profile(name="bench", url=url, user=USER, token=token))
            install_kernel("pai-bench", KernelSettings(image="python:3.11", profile="bench", gpu=0, cpu=1,
                                                       memory_mb=512))
            local_spec = root / "jdata" / "kernels" / "local-bench"
            local_spec.mkdir(parents=True)
            (local_spec / "kernel.json").write_text(json.dumps({
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "local", "language": "python", "interrupt_mode": "message"}))

            def state(job: str) -> str:
                r = requests.get(f"{api}/jobs/{USER}~{job}", headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)
                return str(r.json()["jobStatus"]["state"])

            local_cold = asyncio.run(cold_start("local-bench"))
            remote_cold = asyncio.run(cold_start("pai-bench"))
            local = asyncio.run(measure("local-bench", args.runs))
            remote = asyncio.run(measure("pai-bench", args.runs, state))
            local["start_cold"], remote["start_cold"] = local_cold, remote_cold
        finally:
            proc.terminate()
            proc.wait(20)
    print(f"{'':24}{'local':>10}{'remote':>10}{'ratio':>8}   goal")
    goals = {"start_cold": "(first kernel of the process)", "start": "<= 1.5x", "rt_median": "<= 1.3x",
             "rt_p90": "< 10 ms", "interrupt": "<= 50 ms", "output_8mb": "<= 2x"}
    for key in ("start_cold", "start", "rt_median", "rt_p90", "interrupt", "output_8mb"):
        lv, rv = local[key], remote[key]
        print(f"{key:24}{lv * 1000:>8.1f}ms{rv * 1000:>8.1f}ms{rv / lv:>7.2f}x   {goals[key]}")
    print(f"{'shutdown_to_stopped':24}{'':>10}{remote['shutdown_to_stopped'] * 1000:>8.1f}ms{'':>8}   <= 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
