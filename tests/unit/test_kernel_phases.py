"""The registry of kernel starts (pai_magic.kernel.phases): order, final states, bounds,
listeners, and phases recorded from many threads at once. The clocks are injected (a fake
clock, named so) only to age entries past the registry's minutes-long bounds instantly."""
from __future__ import annotations

import threading

import pytest

from pai_magic.kernel.phases import PHASE_KEYS, StartRegistry


class FakeClock:
    """A fake monotonic/epoch clock: the bounds are minutes, a test cannot wait them out."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_start_goes_through_its_phases_in_order_and_ends_ready():
    reg = StartRegistry()
    v0 = reg.version
    start_id = reg.begin("k1", kernel_name="pai-gpu", display_name="Python 3 on OpenPAI (lab, 1 GPU)",
                         path="work/train.ipynb")
    for key, text in [("submitted", "submitted job pai-kernel-x"), ("waiting", "job is WAITING"),
                      ("running", "job is running"), ("connecting", "connecting over SSH"),
                      ("ready", "kernel ready in job pai-kernel-x (1.0s)")]:
        reg.phase("k1", key, text, job="pai-kernel-x")
    reg.ready("k1")
    snap = reg.snapshot()
    assert snap["version"] > v0
    [start] = snap["starts"]
    assert start["id"] == start_id and start["kernelId"] == "k1" and start["path"] == "work/train.ipynb"
    assert start["job"] == "pai-kernel-x" and start["state"] == "ready" and start["error"] is None
    assert [p["key"] for p in start["phases"]] == ["submitted", "waiting", "running", "connecting", "ready"]
    assert start["finished"] >= start["started"]
    assert all(a["at"] <= b["at"] for a, b in zip(start["phases"], start["phases"][1:]))


def test_a_failed_start_keeps_one_line_and_ignores_later_phases():
    reg = StartRegistry()
    reg.begin("k1", kernel_name="pai-nokernel")
    reg.phase("k1", "submitted", "submitted job j")
    reg.failed("k1", "The image's Python has no ipykernel:\n  pip install ipykernel in the image.")
    version = reg.version
    reg.phase("k1", "connecting", "SSH link re-established")  # not part of the finished start
    reg.ready("k1")
    start = reg.get("k1")
    assert start is not None and reg.version == version
    assert start["state"] == "failed"
    assert start["error"] == "The image's Python has no ipykernel: pip install ipykernel in the image."
    assert [p["key"] for p in start["phases"]] == ["submitted", "failed"]


def test_a_restart_is_a_new_start_of_the_same_kernel():
    reg = StartRegistry()
    first = reg.begin("k1")
    reg.ready("k1")
    second = reg.begin("k1", restart=True)
    starts = reg.snapshot()["starts"]
    assert first != second and [s["id"] for s in starts] == [second]
    assert starts[0]["restart"] and starts[0]["state"] == "starting" and starts[0]["phases"] == []


def test_unknown_phase_keys_are_refused():
    reg = StartRegistry()
    reg.begin("k1")
    with pytest.raises(ValueError):
        reg.phase("k1", "done", "?")
    assert "ready" in PHASE_KEYS and "waiting" in PHASE_KEYS


def test_finished_starts_are_forgotten_after_a_while_and_the_count_is_capped():
    clock = FakeClock()
    reg = StartRegistry(keep_finished=300, keep_unfinished=3600, max_starts=5, clock=clock, monotonic=clock)
    reg.begin("done")
    reg.ready("done")
    reg.begin("slow")
    clock.now += 299
    assert {s["kernelId"] for s in reg.snapshot()["starts"]} == {"done", "slow"}
    clock.now += 2
    assert {s["kernelId"] for s in reg.snapshot()["starts"]} == {"slow"}  # still starting: kept
    clock.now += 3600
    assert reg.snapshot()["starts"] == []
    for i in range(8):  # more than the cap: the oldest finished go first, then the oldest
        reg.begin(f"k{i}")
        if i < 3:
            reg.ready(f"k{i}")
        clock.now += 1
    kept = [s["kernelId"] for s in reg.snapshot()["starts"]]
    assert len(kept) == 5 and kept == ["k3", "k4", "k5", "k6", "k7"]


def test_phases_per_start_are_bounded_keeping_the_first_and_the_latest():
    reg = StartRegistry(max_phases=4)
    reg.begin("k1")
    for i in range(10):
        reg.phase("k1", "connecting", f"attempt {i}")
    texts = [p["text"] for p in reg.get("k1")["phases"]]  # type: ignore[index]
    assert texts == ["attempt 0", "attempt 7", "attempt 8", "attempt 9"]


def test_listeners_hear_each_change_and_a_failing_one_breaks_nothing():
    reg = StartRegistry()
    heard: list[int] = []
    unsubscribe = reg.subscribe(lambda: heard.append(reg.version))

    def broken() -> None:
        raise RuntimeError("a listener of a closed event loop")

    reg.subscribe(broken)
    reg.begin("k1")
    reg.phase("k1", "submitted", "x")
    unsubscribe()
    reg.ready("k1")
    assert len(heard) == 2 and heard[0] < heard[1]


def test_phases_from_many_threads_are_all_kept_in_the_order_they_were_recorded():
    reg = StartRegistry(max_phases=10_000)
    kernels = [f"k{i}" for i in range(8)]
    for kid in kernels:
        reg.begin(kid)
    v0 = reg.version
    changes = []
    reg.subscribe(lambda: changes.append(1))
    barrier = threading.Barrier(len(kernels) * 2)

    def record(kid: str, worker: int) -> None:
        barrier.wait()
        for n in range(200):
            reg.phase(kid, "waiting", f"{worker}:{n}")

    threads = [threading.Thread(target=record, args=(kid, w)) for kid in kernels for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert reg.version == v0 + len(kernels) * 2 * 200 == v0 + len(changes)
    for kid in kernels:
        texts = [p["text"] for p in reg.get(kid)["phases"]]  # type: ignore[index]
        assert len(texts) == 400
        for worker in range(2):
            mine = [int(t.split(":")[1]) for t in texts if t.startswith(f"{worker}:")]
            assert mine == list(range(200))


def test_nothing_in_it_is_more_than_one_line_or_unbounded():
    reg = StartRegistry()
    reg.begin("k1", display_name="a\nb", path="x" * 5000)
    reg.phase("k1", "waiting", "line one\nline two " + "y" * 1000)
    start = reg.get("k1")
    assert start is not None
    assert start["displayName"] == "a b" and len(start["path"]) <= 1000
    assert "\n" not in start["phases"][0]["text"] and len(start["phases"][0]["text"]) <= 300


def test_a_kernel_whose_job_ended_is_a_new_entry_even_after_its_start_was_forgotten():
    clock = FakeClock()
    reg = StartRegistry(clock=clock, monotonic=clock)
    first = reg.begin("k1", kernel_name="pai-gpu", display_name="GPU", path="a.ipynb", job="pai-kernel-x")
    reg.ready("k1")
    reg.ended("k1", "Job pai-kernel-x was STOPPED outside Jupyter\nsecond line")
    [entry] = reg.snapshot()["starts"]
    assert entry["id"] != first and entry["state"] == "ended" and entry["path"] == "a.ipynb"
    assert entry["job"] == "pai-kernel-x" and entry["error"].startswith("Job pai-kernel-x was STOPPED outside")
    assert "\n" not in entry["error"]
    assert [p["key"] for p in entry["phases"]] == ["ended"]
    clock.now += 3600  # the start is long forgotten when a kernel that ran for hours ends
    assert reg.snapshot()["starts"] == []
    reg.ended("k1", "Job y ended FAILED", kernel_name="pai-gpu", display_name="GPU", path="a.ipynb", job="y")
    [entry] = reg.snapshot()["starts"]
    assert (entry["state"], entry["path"], entry["displayName"], entry["job"]) == ("ended", "a.ipynb", "GPU", "y")
