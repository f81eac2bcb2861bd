"""Job-list calls per minute that one person's Jupyter session costs the cluster, vs. OpenPAI's budget.

The scene, against the embedded backend with OpenPAI's rate limits ON (600 calls/min per
address, 120 job lists/min per user, 3600 submits/h, as a deployed rest-server):

- 10 real ipykernels, each ``%load_ext pai_magic`` + a ``%%pai_job`` cell whose job keeps
  running, so each kernel shows a live job status (its status board polls in the kernel);
- a sidebar session: a real Jupyter server with the pai_magic server extension, its job list
  route (``/pai-magic/api/jobs?limit=20``) polled every 3 s as the sidebar does;
- a CLI watch: ``pai-magic job NAME --wait`` on an 11th running job.

The backend's access log counts ``GET /rest-server/api/v2/jobs`` (answered and refused) over
a measured window once everything runs. Two phases in the same run:

- baseline: ``PAI_MAGIC_SHARED_POLL=off``, so nothing is shared: each kernel lists every 2 s,
  the sidebar every 3 s and the watch reads the job's detail, each on its own (the behaviour
  before the shared poll);
- shared: the default: all of them read the ONE shared list.

Prints calls/min of each phase against the 120/min budget (goal: shared under half, 60/min),
the 429s seen, and the live status updates the kernels published (proof they kept polling).

Run: ``python bench/bench_polling.py [--duration 60] [--kernels 10] [--no-baseline]``
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server.jupyter_process import JupyterProcess  # noqa: E402

BUDGET = 120.0  # OpenPAI's deployed rate-limit-list-job-per-min
LIST_LINE = re.compile(r" (\d{3}) GET /rest-server/api/v2/jobs(?: |$)")
SIDEBAR_EVERY = 3.0


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for var in ("PAI_URL", "PAI_USER", "PAI_TOKEN", "PAI_PROFILE", "PAI_MAGIC_REQUEST_TIMEOUT"):
        env.pop(var, None)
    env.update(extra)
    return env


class Backend:
    """``python -m pai_magic.local --rate-limit`` with its access log in a file."""

    def __init__(self, root: Path) -> None:
        self.password = secrets.token_urlsafe(12)
        self.log_path = root / "backend.log"
        env = env_with(BENCH_PASSWORD=self.password)
        env.pop("PAI_LOCAL_RATE_LIMIT", None)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pai_magic.local", "--data-dir", str(root / "backend"), "--user", "bench",
             "--password-env", "BENCH_PASSWORD", "--rate-limit", "--log-level", "DEBUG"],
            stdout=subprocess.PIPE, stderr=self._log, env=env, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit(f"backend did not start; see {self.log_path}")
        resp = requests.post(f"{self.url}/rest-server/api/v2/authn/basic/login",
                             json={"username": "bench", "password": self.password}, timeout=30)
        resp.raise_for_status()
        self.token = resp.json()["token"]

    def submit(self, name: str, seconds: int) -> None:
        job = (f"protocolVersion: 2\nname: {name}\ntype: job\nprerequisites:\n"
               "  - {type: dockerimage, name: img, uri: 'ubuntu:22.04'}\n"
               "taskRoles:\n  main:\n    instances: 1\n    dockerImage: img\n"
               "    resourcePerInstance: {cpu: 1, memoryMB: 512, gpu: 0}\n"
               f"    commands: ['sleep {seconds}']\n")
        resp = requests.post(f"{self.url}/rest-server/api/v2/jobs", data=job.encode(), timeout=30,
                             headers={"Authorization": f"Bearer {self.token}", "Content-Type": "text/yaml"})
        resp.raise_for_status()

    def list_calls(self) -> tuple[int, int]:
        """(answered, refused with 429) ``GET /jobs`` calls logged so far."""
        answered = refused = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = LIST_LINE.search(line)
            if match:
                if match.group(1) == "429":
                    refused += 1
                else:
                    answered += 1
        return answered, refused

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def login_profile(config_dir: Path, url: str, password: str) -> None:
    """Save the active profile every face of the scene reads (a real password login)."""
    code = ("import sys; from pai_magic.core.auth import login_with_password;"
            "login_with_password(sys.argv[1], 'bench', sys.stdin.read())")
    subprocess.run([sys.executable, "-c", code, url], input=password, text=True, check=True, timeout=120,
                   env=env_with(PAI_MAGIC_CONFIG_DIR=str(config_dir)))


class Kernels:
    """N ipykernels, each running a live %%pai_job status; counts their status updates."""

    def __init__(self, n: int, env_for: Any, job_seconds: int) -> None:
        from jupyter_client.manager import KernelManager

        self.managers: list[Any] = []
        self.clients: list[Any] = []
        self.updates = [0] * n
        self.errors: list[str] = []
        self._stop = threading.Event()
        for i in range(n):
            km = KernelManager(kernel_name="python3")
            km.start_kernel(env=env_for(i))
            kc = km.blocking_client()
            kc.start_channels()
            self.managers.append(km)
            self.clients.append(kc)
        for i, kc in enumerate(self.clients):
            kc.wait_for_ready(timeout=180)
            reply = kc.execute_interactive("%load_ext pai_magic\n%config PaiMagics.display = 'html'",
                                           timeout=180, output_hook=lambda m: None)
            self._check(i, reply)
        for i, kc in enumerate(self.clients):
            cell = f"%%pai_job bench{i} --image ubuntu:22.04\nsleep {job_seconds}\n"
            reply = kc.execute_interactive(cell, timeout=180, output_hook=lambda m, i=i: self._hook(i, m))
            self._check(i, reply)
        self._threads = [threading.Thread(target=self._drain, args=(i,), daemon=True) for i in range(n)]
        for thread in self._threads:
            thread.start()

    def _check(self, i: int, reply: dict[str, Any]) -> None:
        if reply["content"].get("status") != "ok":
            raise SystemExit(f"kernel {i}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")

    def _hook(self, i: int, msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "update_display_data":
            self.updates[i] += 1
        elif msg["msg_type"] == "error":
            self.errors.append(f"kernel {i}: {msg['content'].get('evalue')}")

    def _drain(self, i: int) -> None:
        kc = self.clients[i]
        while not self._stop.is_set():
            try:
                self._hook(i, kc.get_iopub_msg(timeout=0.5))
            except Exception:  # noqa: BLE001 - queue.Empty: nothing published in that half second
                continue

    def stop(self) -> None:
        self._stop.set()
        for kc in self.clients:
            kc.stop_channels()
        for km in self.managers:
            km.shutdown_kernel(now=True)


def sidebar_poll(jupyter: JupyterProcess, stop: threading.Event, seen: list[int]) -> None:
    """What the sidebar does while open: its job list every 3 s."""
    while not stop.is_set():
        try:
            seen.append(jupyter.get("pai-magic/api/jobs?limit=20").status_code)
        except requests.RequestException:
            seen.append(0)
        stop.wait(SIDEBAR_EVERY)


def phase(name: str, *, shared: bool, kernels: int, duration: float, root: Path) -> dict[str, Any]:
    root.mkdir(parents=True)
    config_dir = root / "config"
    if shared:
        os.environ.pop("PAI_MAGIC_SHARED_POLL", None)
    else:
        os.environ["PAI_MAGIC_SHARED_POLL"] = "off"  # inherited by every process of the phase
    backend = Backend(root)
    job_seconds = int(duration + 600)
    started_parts: list[Any] = []
    try:
        login_profile(config_dir, backend.url, backend.password)

        def data_dir(who: str) -> str:
            return str(root / "data")

        jupyter = JupyterProcess(root / "jupyter", config_dir,
                                 env={"PAI_MAGIC_DATA_DIR": data_dir("sidebar")}).start()
        started_parts.append(jupyter)
        backend.submit("bench-cli", job_seconds)
        watch = subprocess.Popen([sys.executable, "-m", "pai_magic", "job", "bench-cli", "--wait"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=env_with(PAI_MAGIC_CONFIG_DIR=str(config_dir),
                                              PAI_MAGIC_DATA_DIR=data_dir("cli")))
        started_parts.append(watch)
        print(f"[{name}] starting {kernels} kernels ...", flush=True)

        def kernel_env(i: int) -> dict[str, str]:
            return env_with(PAI_MAGIC_CONFIG_DIR=str(config_dir), PAI_MAGIC_DATA_DIR=data_dir(f"kernel{i}"))

        ks = Kernels(kernels, kernel_env, job_seconds)
        started_parts.append(ks)
        stop = threading.Event()
        sidebar_codes: list[int] = []
        poller = threading.Thread(target=sidebar_poll, args=(jupyter, stop, sidebar_codes), daemon=True)
        poller.start()
        time.sleep(5)  # everything polls now; measure from here
        answered0, refused0 = backend.list_calls()
        updates0 = sum(ks.updates)
        print(f"[{name}] measuring {duration:.0f} s ...", flush=True)
        t0 = time.monotonic()
        time.sleep(duration)
        minutes = (time.monotonic() - t0) / 60.0
        answered1, refused1 = backend.list_calls()
        updates1 = sum(ks.updates)
        stop.set()
        poller.join(10)
        if watch.poll() is not None:
            raise SystemExit(f"[{name}] the CLI watch ended early: {watch.stderr.read() if watch.stderr else ''}")
        return {
            "phase": name,
            "answered_per_min": (answered1 - answered0) / minutes,
            "refused_per_min": (refused1 - refused0) / minutes,
            "calls_per_min": (answered1 - answered0 + refused1 - refused0) / minutes,
            "kernel_updates_per_min": (updates1 - updates0) / minutes,
            "kernels_updating": sum(1 for u in ks.updates if u > 0),
            "sidebar_polls": len(sidebar_codes),
            "sidebar_errors": sum(1 for c in sidebar_codes if c != 200),
            "kernel_errors": ks.errors[:3],
        }
    finally:
        for part in reversed(started_parts):
            try:
                if isinstance(part, subprocess.Popen):
                    part.terminate()
                    part.wait(20)
                else:
                    part.stop()
            except Exception as exc:  # noqa: BLE001 - keep tearing down the rest
                print(f"teardown: {exc}", file=sys.stderr)
        backend.stop()


def report(result: dict[str, Any]) -> None:
    print(f"{result['phase']:>8}: {result['calls_per_min']:6.1f} job-list calls/min "
          f"({result['calls_per_min'] / BUDGET:.2f} of the {BUDGET:.0f}/min budget; "
          f"{result['refused_per_min']:.1f}/min refused with 429); "
          f"{result['kernels_updating']} kernels updating their status "
          f"({result['kernel_updates_per_min']:.0f} updates/min); sidebar: {result['sidebar_polls']} polls, "
          f"{result['sidebar_errors']} errors", flush=True)
    for err in result["kernel_errors"]:
        print(f"          kernel error: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per phase (default 60)")
    parser.add_argument("--kernels", type=int, default=10)
    parser.add_argument("--no-baseline", action="store_true", help="skip the unshared phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-polling-") as tmp:
        results = []
        if not args.no_baseline:
            results.append(phase("baseline", shared=False, kernels=args.kernels, duration=args.duration,
                                 root=Path(tmp) / "baseline"))
            report(results[-1])
        results.append(phase("shared", shared=True, kernels=args.kernels, duration=args.duration,
                             root=Path(tmp) / "shared"))
        report(results[-1])
    shared = results[-1]
    baseline = "" if args.no_baseline else f"; baseline (nothing shared) {results[0]['calls_per_min']:.1f}/min"
    print(f"\nshared poll: {shared['calls_per_min']:.1f} job-list calls/min = "
          f"{shared['calls_per_min'] / BUDGET:.2f} x the {BUDGET:.0f}/min budget (goal < 0.50){baseline}")
    print("GOAL MET" if shared["calls_per_min"] < BUDGET / 2 else "GOAL MISSED")


if __name__ == "__main__":
    main()
