"""Benchmark of the embedded backend, over real HTTP against a real backend process.

Prints, one result a line:
- jobs per second for 200 short jobs submitted and awaited (one list request per poll tick);
- the first-page list time (limit 20, withTotalCount, newest first) with 10,000 stored jobs
  as a ratio to the same with 100 stored jobs, measured in this run (goal: under 2).

Run: ``python bench/bench_local_jobs.py [--jobs 200] [--big 10000]``. Exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._backend import start_backend  # noqa: E402

from pai_magic.local.seed import seed_jobs  # noqa: E402

PREFIX = "/rest-server/api/v2"
USER, PASSWORD = "bench", "bench-password"


def job_yaml(name: str) -> bytes:
    return yaml.safe_dump({
        "protocolVersion": 2, "name": name, "type": "job",
        "prerequisites": [{"name": "i", "type": "dockerimage", "uri": "ubuntu:22.04"}],
        "taskRoles": {"main": {"instances": 1, "dockerImage": "i",
                               "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0},
                               "commands": ["true"]}}}).encode()


def first_page_seconds(session: requests.Session, api: str, rounds: int) -> float:
    params = {"offset": 0, "limit": 20, "withTotalCount": "true", "order": "submissionTime,DESC"}
    for _ in range(5):  # warm the connection and sqlite's page cache
        session.get(f"{api}/jobs", params=params, timeout=30).raise_for_status()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        resp = session.get(f"{api}/jobs", params=params, timeout=30)
        samples.append(time.perf_counter() - t0)
        resp.raise_for_status()
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        data = Path(tmp) / "data"
        proc, url = start_backend(data, USER, PASSWORD)
        try:
            api = url + PREFIX
            s = requests.Session()
            token = s.post(f"{api}/authn/basic/login", json={"username": USER, "password": PASSWORD},
                           timeout=30).json()["token"]
            s.headers["Authorization"] = f"Bearer {token}"
            # warm-up: the first submit pays for the validator's imports
            s.post(f"{api}/jobs", data=job_yaml("warmup"), headers={"Content-Type": "text/yaml"},
                   timeout=60).raise_for_status()

            t0 = time.perf_counter()
            for i in range(args.jobs):
                s.post(f"{api}/jobs", data=job_yaml(f"short-{i}"), headers={"Content-Type": "text/yaml"},
                       timeout=30).raise_for_status()
            submitted = time.perf_counter() - t0
            polls = 0
            while True:
                polls += 1
                page = s.get(f"{api}/jobs", params={"username": USER, "state": "WAITING,RUNNING,STOPPING",
                                                    "withTotalCount": "true", "limit": 1}, timeout=30).json()
                if page["totalCount"] == 0:
                    break
                time.sleep(0.05)
            total = time.perf_counter() - t0
            states = s.get(f"{api}/jobs", params={"username": USER, "state": "SUCCEEDED", "withTotalCount": "true",
                                                  "limit": 1}, timeout=30).json()["totalCount"]
            print(f"jobs: {args.jobs} short jobs submitted in {submitted:.2f} s, all finished in {total:.2f} s "
                  f"({states - 1} + warm-up SUCCEEDED, {polls} list polls)")
            print(f"jobs_per_second: {args.jobs / total:.1f}")

        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        list_phase(Path(tmp) / "list-data", args)
    return 0


def list_phase(data: Path, args: argparse.Namespace) -> None:
    """First-page time with ``--small`` then ``--big`` stored jobs, in a backend of its own."""
    seed_jobs(data, USER, args.small, prefix="small")
    proc, url = start_backend(data, USER, PASSWORD)
    try:
        api = url + PREFIX
        s = requests.Session()
        token = s.post(f"{api}/authn/basic/login", json={"username": USER, "password": PASSWORD},
                       timeout=30).json()["token"]
        s.headers["Authorization"] = f"Bearer {token}"
        info = statistics.median(_time(s, f"{api}/info") for _ in range(args.rounds))
        small = first_page_seconds(s, api, args.rounds)
        seed_jobs(data, USER, args.big - args.small, prefix="big")
        big = first_page_seconds(s, api, args.rounds)
        print(f"baseline GET /info median: {info * 1000:.2f} ms")
        print(f"first page (limit 20, withTotalCount) with {args.small} jobs: {small * 1000:.2f} ms")
        print(f"first page (limit 20, withTotalCount) with {args.big} jobs: {big * 1000:.2f} ms")
        ratio = big / small
        print(f"list_ratio_{args.big}_vs_{args.small}: {ratio:.2f} (goal < 2: {'met' if ratio < 2 else 'NOT met'})")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _time(session: requests.Session, url: str) -> float:
    t0 = time.perf_counter()
    session.get(url, timeout=30).raise_for_status()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
