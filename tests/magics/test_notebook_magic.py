"""%pai_run_notebook against the embedded backend: returns at once with a live line per run
(updated in place), a 2-point sweep ends with two executed copies; --wait on a failing
notebook raises one line naming the cell."""
from __future__ import annotations

import time

import pytest
from IPython.core.error import UsageError

from pai_magic.core.notebook import find_result
from tests.notebook.conftest import outputs_text, write_notebook


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_non_blocking_sweep_with_live_lines(pai, tmp_path, home):
    pai.run("%config PaiMagics.display = 'html'")
    nb = write_notebook(tmp_path / "m.ipynb", "import time; time.sleep(1)\nprint('value', v)", parameters="v = 0")
    assert pai.line("pai_run_notebook", f"{nb} --image python:3.11 -p v 1 -p v 2 -o runs") is None
    handle = pai.shell.user_ns["runs"]
    assert len(handle.jobs) == 2
    assert not handle.done  # the cell returned while the runs go on
    results = handle.wait(180)
    assert sorted(r.state for r in results.values()) == ["SUCCEEDED", "SUCCEEDED"]
    assert sorted(outputs_text(r.notebook).strip() for r in results.values()) == ["value 1", "value 2"]
    updates = [i for i in pai.recorder.items if i["transient"].get("display_id", "").startswith("pai-magic-nb-")]
    assert updates[0]["update"] is False and all(i["update"] for i in updates[1:])
    texts = [i["data"]["text/plain"] for i in updates]
    assert any(" of 3" in t for t in texts) and "SUCCEEDED" in texts[-1].upper()
    assert "[v=1]" in texts[-1] and "[v=2]" in texts[-1], texts[-1]  # which line is which point
    for job in handle.jobs:
        assert find_result(job).state == "SUCCEEDED"


def test_wait_on_failing_notebook_names_the_cell(pai, tmp_path, home):
    nb = write_notebook(tmp_path / "bad.ipynb", "print('ok')", "raise ValueError('bad input')")
    with pytest.raises(UsageError) as err:
        pai.line("pai_run_notebook", f"{nb} --image python:3.11 --wait")
    message = str(err.value)
    assert "\n" not in message and "cell 2 of 2 failed: ValueError: bad input" in message
    assert "executed notebook: " in message


def test_handle_stop_brings_back_what_ran(pai, tmp_path, home):
    nb = write_notebook(tmp_path / "long.ipynb", "print('ran first', flush=True)", "import time\ntime.sleep(300)")
    pai.line("pai_run_notebook", f"{nb} --image python:3.11 -o long")
    handle = pai.shell.user_ns["long"]
    deadline = time.monotonic() + 120
    while "cell 2 of 2" not in " ".join(handle.lines.values()):
        assert time.monotonic() < deadline and not handle.done, handle.lines
        time.sleep(0.1)
    handle.stop()
    (result,) = handle.wait(120).values()
    assert result.state == "STOPPED" and "ran first" in outputs_text(result.notebook)
    assert pai.backend.wait(result.job.split("~")[1])["jobStatus"]["state"] == "STOPPED"


def test_ctrl_c_under_wait_stops_the_runs_and_names_what_came_back(pai, tmp_path, home):
    """Before: the interrupt said "the runs continue: call .stop() on the handle", a handle the
    user had no way to reach without -o, so the jobs ran on. Now the interrupt stops them (as
    `run-notebook --wait` does): one line names the executed notebook, the job ends STOPPED.
    The interrupt is the real one: ``_thread.interrupt_main`` raises KeyboardInterrupt in the
    main thread, as the kernel's interrupt does."""
    import _thread
    import threading

    nb = write_notebook(tmp_path / "int.ipynb", "print('ran first', flush=True)", "import time\ntime.sleep(300)")

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            handle = pai.shell.user_ns.get("h")
            if handle is not None and "cell 2 of 2" in " ".join(handle.lines.values()):
                _thread.interrupt_main()
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(UsageError) as err:
        pai.line("pai_run_notebook", f"{nb} --image python:3.11 --wait -o h")
    message = str(err.value)
    assert "\n" not in message and "STOPPED" in message and "executed notebook: " in message, message
    assert "ran first" in outputs_text(message.split("executed notebook: ")[1])
    (job,) = pai.shell.user_ns["h"].jobs
    assert pai.backend.wait(job.split("~")[1])["jobStatus"]["state"] == "STOPPED"
