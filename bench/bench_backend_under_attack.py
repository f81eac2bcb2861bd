"""Benchmark: the embedded backend's GET /info latency while another user attacks it.

One real backend process, measured in the same run:
- baseline: p50/p99 of GET /info with nothing else going on;
- under attack: the same while another user keeps submitting the ~700-byte YAML anchor bomb
  (nine nested levels of nine aliases) from several connections, plus 50 MB bodies and
  50,000-deep YAML now and then.

Prints both p99s, their ratio, and whether the goal (p99 under attack below 100 ms) holds; then
the same for an authenticated ``GET /jobs`` (whose work shares the executor with the attack).
Before the hardening of issue 12 one bomb stalled every request for seconds.

Run: ``python bench/bench_backend_under_attack.py [--requests 1000] [--attackers 4]``. Exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._backend import start_backend  # noqa: E402
from tests.integration.test_local_hardening import anchor_bomb  # noqa: E402  (the attack the tests reproduce)

PREFIX = "/rest-server/api/v2"
ADMIN, ADMIN_PW = "bench", "bench-password"
ATTACKER, ATTACKER_PW = "mallory", "mallory-password"
GOAL_MS = 100.0


def login(api: str, user: str, password: str) -> str:
    resp = requests.post(f"{api}/authn/basic/login", json={"username": user, "password": password}, timeout=30)
    resp.raise_for_status()
    return str(resp.json()["token"])


def latencies(url: str, count: int, token: str | None = None) -> list[float]:
    samples = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with requests.Session() as session:
        for _ in range(20):  # warm the connection
            session.get(url, headers=headers, timeout=30).raise_for_status()
        for _ in range(count):
            start = time.perf_counter()
            session.get(url, headers=headers, timeout=30).raise_for_status()
            samples.append(time.perf_counter() - start)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


def attack(api: str, token: str, stop: threading.Event, counts: dict[str, int], heavy: bool) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/yaml"}
    big = b"x: " + b"y" * (50 * 1024 * 1024)
    deep = b"protocolVersion: 2\nname: deep\nparameters:\n  p: " + b"[" * 50_000 + b"]" * 50_000 + b"\n"
    n = 0
    with requests.Session() as session:
        while not stop.is_set():
            n += 1
            if heavy and n % 10 == 0:
                body = big if n % 20 == 0 else deep
            else:
                body = anchor_bomb(f"bomb{n}").encode()
            try:
                resp = session.post(f"{api}/jobs", data=body, headers=headers, timeout=60)
                counts[str(resp.status_code)] = counts.get(str(resp.status_code), 0) + 1
            except requests.RequestException:  # a refused 50 MB upload may close the connection
                counts["closed"] = counts.get("closed", 0) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="GET /info samples per phase")
    parser.add_argument("--attackers", type=int, default=4, help="connections submitting bombs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-attack-") as tmp:
        proc, url = start_backend(Path(tmp) / "data", ADMIN, ADMIN_PW)
        api = url + PREFIX
        try:
            admin = login(api, ADMIN, ADMIN_PW)
            requests.post(f"{api}/users", json={"username": ATTACKER, "password": ATTACKER_PW},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=30).raise_for_status()
            attacker = login(api, ATTACKER, ATTACKER_PW)

            jobs_url = f"{api}/jobs?limit=20"  # authenticated: its work runs on the executor
            quiet = latencies(f"{api}/info", args.requests)
            quiet_jobs = latencies(jobs_url, args.requests // 2, admin)
            stop = threading.Event()
            counts: dict[str, int] = {}
            threads = [threading.Thread(target=attack, args=(api, attacker, stop, counts, i == 0), daemon=True)
                       for i in range(args.attackers)]
            for t in threads:
                t.start()
            time.sleep(0.5)  # the attack is under way
            loud = latencies(f"{api}/info", args.requests)
            loud_jobs = latencies(jobs_url, args.requests // 2, admin)
            stop.set()
            for t in threads:
                t.join(120)
        finally:
            proc.terminate()
            proc.wait(30)
    base, under = p99(quiet), p99(loud)
    print(f"GET /info p99 without attack:     {base:7.1f} ms (p50 {statistics.median(quiet) * 1000:.1f} ms)")
    print(f"GET /info p99 under anchor bombs: {under:7.1f} ms (p50 {statistics.median(loud) * 1000:.1f} ms; "
          f"attack answers {dict(sorted(counts.items()))})")
    print(f"ratio under attack / baseline: {under / base:.1f}x; goal p99 < {GOAL_MS:.0f} ms: "
          f"{'met' if under < GOAL_MS else 'NOT met'}")
    print(f"GET /jobs?limit=20 (token) p99 without attack {p99(quiet_jobs):.1f} ms, under attack "
          f"{p99(loud_jobs):.1f} ms ({p99(loud_jobs) / p99(quiet_jobs):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
