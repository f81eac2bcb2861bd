"""A notebook as a job on the embedded backend, end to end: parameters injected and visible in
the executed copy, a failing cell (CLI exits 1 with one line naming the cell), stops (from
pai_magic and through the REST API) bring back what ran, a 3-point sweep, a 20 MB output."""
from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

from pai_magic.cli import main as cli_main
from pai_magic.core.notebook import NotebookRunSpec, find_result, parse_pairs, run_notebook, run_sweep, sweep_points
from pai_magic.core.notebook.run import follow_run, prepare_run, submit_run
from tests.integration.test_cli_json_keys import bad_keys
from tests.notebook.conftest import outputs_text, python_without_nbclient, write_notebook

IMAGE = "python:3.11"


def test_parameters_injected_and_visible(nb_client, local_backend, tmp_path):
    """... and with --storage, a durable copy of the executed notebook lands on the storage too."""
    nb = write_notebook(tmp_path / "params.ipynb", "print('lr is', lr, type(lr).__name__, '| tag', tag)",
                        parameters="lr = 1.0\ntag = 'default'")
    seen = []
    result = run_notebook(nb_client, NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out"),
                                                     parameters={"lr": 0.01, "tag": "run-a"}, storage="default"),
                          on_progress=seen.append)
    assert result.state == "SUCCEEDED", result
    assert Path(result.notebook).parent == tmp_path / "out" / result.job.split("~")[1]
    executed = json.loads(Path(result.notebook).read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "lr = 0.01" in "".join(injected[0]["source"])
    assert executed["cells"].index(injected[0]) == 1  # right after the `parameters` cell, as papermill does
    assert "lr is 0.01 float | tag run-a" in outputs_text(result.notebook)
    assert any(p.state == "RUNNING" and p.total == 3 for p in seen), [p.line() for p in seen]
    assert local_backend.wait(result.job.split("~")[1])["jobStatus"]["state"] == "SUCCEEDED"
    found = find_result(result.job)
    assert found is not None and found.notebook == result.notebook and found.state == "SUCCEEDED"
    job = result.job.split("~")[1]
    assert found.storage_copy == f"default:pai-nb-runs/{job}/params.ipynb"
    durable = local_backend.data_dir / "storages" / "default" / "pai-nb-runs" / job
    assert json.loads((durable / "params.ipynb").read_text()) == executed
    assert json.loads((durable / "status.json").read_text())["state"] == "succeeded"


def test_failing_cell_cli_exits_one_line_naming_the_cell(cli_env, tmp_path, capsys):
    nb = write_notebook(tmp_path / "fails.ipynb", "print('first ran')", "ratio = 1 / zero", "print('never')",
                        parameters="zero = 1")
    code = cli_main(["run-notebook", str(nb), "--image", IMAGE, "-p", "zero", "0", "--wait", "--html", "--json"])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    data = json.loads(out)
    assert not bad_keys(data, opaque=frozenset({"parameters"})), data
    assert data["runs"][0]["state"] == "FAILED" and data["runs"][0]["parameters"] == {"zero": 0}
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "cell 4 of 5 failed: ZeroDivisionError" in lines[0] and "ratio = 1 / zero" in lines[0], lines[0]
    path = lines[0].split("executed notebook: ")[1]
    text = outputs_text(path)
    assert "first ran" in text and "ZeroDivisionError" in text and "never" not in text
    assert Path(path).with_suffix(".html").is_file()
    job = path.split("/")[-2]
    result = find_result(f"{cli_env.user}~{job}")
    assert result.state == "FAILED" and result.failed_cell["cell"] == 4 and result.failed_cell["index"] == 3
    assert cli_env.wait(job)["jobStatus"]["state"] == "FAILED"


def _follow_until_cell(client, nb, tmp_path, cell, stop=None):
    run = prepare_run(NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out")))
    submit_run(client, run)
    reached = threading.Event()
    box = {}

    def progress(p):
        if p.state == "RUNNING" and p.cell >= cell:
            reached.set()

    def follow():
        box["result"] = follow_run(client, run, on_progress=progress, stop=stop)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return run, reached, thread, box


def test_stop_mid_run_brings_back_what_ran(nb_client, local_backend, tmp_path):
    """One run stopped through pai_magic (kernel interrupted, last state fetched, job STOPPED) and one
    stopped elsewhere (a bare REST stop, as the portal does): both bring back the cells that ran."""
    nb = write_notebook(tmp_path / "long.ipynb", "print('before the long cell', flush=True)",
                        "import time\nprint('long cell started', flush=True)\ntime.sleep(300)", "print('after')")
    stop = threading.Event()
    mine, reached_a, thread_a, box_a = _follow_until_cell(nb_client, nb, tmp_path, 2, stop)
    other, reached_b, thread_b, box_b = _follow_until_cell(nb_client, nb, tmp_path, 2)
    assert reached_a.wait(120) and reached_b.wait(120)
    # the runner re-snapshots a cell that printed every few seconds, and the follower fetches it:
    # wait until the long cell's first line is here, then stop both
    deadline = time.monotonic() + 120
    while not (other.local_notebook.exists() and "long cell started" in outputs_text(other.local_notebook)):
        assert time.monotonic() < deadline, "the running cell's output never came back"
        time.sleep(0.2)
    stop.set()
    nb_client.stop(other.name)
    thread_a.join(120)
    thread_b.join(120)
    a, b = box_a["result"], box_b["result"]
    assert a.state == "STOPPED" and b.state == "STOPPED", (a, b)
    text_a = outputs_text(a.notebook)
    assert "before the long cell" in text_a and "long cell started" in text_a and "KeyboardInterrupt" in text_a
    assert "after" not in text_a.replace("after the", "")
    assert "before the long cell" in outputs_text(b.notebook) and "long cell started" in outputs_text(b.notebook)
    assert local_backend.wait(mine.name)["jobStatus"]["state"] == "STOPPED"
    assert local_backend.wait(other.name)["jobStatus"]["state"] == "STOPPED"


def test_sweep_of_three_points_three_jobs_three_results(nb_client, tmp_path):
    nb = write_notebook(tmp_path / "sweep.ipynb", "print(f'result lr={lr}')", parameters="lr = 1.0")
    points = sweep_points(parse_pairs([("lr", "0.1"), ("lr", "0.01"), ("lr", "0.001")]))
    before = {j.name for j in nb_client.list_jobs(limit=500).items}
    results = run_sweep(nb_client, NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out")),
                        points)
    after = [j for j in nb_client.list_jobs(limit=500).items if j.name not in before]
    assert len(after) == 3 and all(j.name.startswith("pai-nb-sweep_") for j in after)
    assert [r.state for r in results] == ["SUCCEEDED"] * 3
    assert len({r.notebook for r in results}) == 3
    for r, lr in zip(results, ("0.1", "0.01", "0.001")):
        assert f"result lr={lr}" in outputs_text(r.notebook)


def test_twenty_megabyte_output_comes_back_intact(nb_client, tmp_path):
    nb = write_notebook(
        tmp_path / "big.ipynb",
        "import base64, hashlib, os\nfrom IPython.display import display\n"
        "blob = base64.b64encode(os.urandom(15 * 1024 * 1024)).decode()\n"
        "display({'text/plain': 'blob', 'application/x-pai-blob': blob}, raw=True)\n"
        "print(hashlib.sha256(blob.encode()).hexdigest())")
    result = run_notebook(nb_client, NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out")))
    assert result.state == "SUCCEEDED", result
    assert Path(result.notebook).stat().st_size > 20 * 1024 * 1024
    outputs = json.loads(Path(result.notebook).read_text())["cells"][0]["outputs"]
    blob = next(o["data"]["application/x-pai-blob"] for o in outputs if o["output_type"] == "display_data")
    printed = next("".join(o["text"]) for o in outputs if o["output_type"] == "stream").strip()
    assert hashlib.sha256(blob.encode()).hexdigest() == printed


def test_time_limit_brings_back_what_ran_and_names_the_cell(nb_client, tmp_path):
    nb = write_notebook(tmp_path / "slow.ipynb", "print('quick cell', flush=True)", "import time\ntime.sleep(120)",
                        "print('never')")
    result = run_notebook(nb_client, NotebookRunSpec(notebook=str(nb), image=IMAGE, timeout=4,
                                                     out_root=str(tmp_path / "out")))
    assert result.state == "TIMEOUT", result
    assert result.failed_cell["cell"] == 2 and "cell 2 of 3 (`import time`)" in result.message, result.message
    text = outputs_text(result.notebook)
    assert "quick cell" in text and "TimeoutError" in text and "never" not in text


def test_run_without_wait_then_fetch_later(cli_env, tmp_path, capsys):
    """The CLI returns once the notebook runs; `notebook-result --wait` attaches and fetches it."""
    nb = write_notebook(tmp_path / "later.ipynb", "import time\ntime.sleep(3)\nprint('done later')")
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "--json"]) == 0
    started = json.loads(capsys.readouterr().out)["runs"][0]
    assert started["state"] == "RUNNING" and started["notebook"] is None
    assert cli_main(["notebook-result", started["job"]]) == 0  # a fresh shell asks: it says how to fetch it
    assert f"notebook-result {started['job'].split('~')[1]} --wait" in capsys.readouterr().out
    assert cli_main(["notebook-result", started["job"], "--wait", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["state"] == "SUCCEEDED" and "done later" in outputs_text(done["notebook"])
    assert cli_main(["notebook-result", started["job"].split("~")[1], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notebook"] == done["notebook"]


def test_image_without_nbclient_says_the_fix_in_one_line(cli_env, tmp_path, capsys):
    """Debian's own Python has no nbclient: the run fails as soon as the task runs, naming the fix."""
    python = python_without_nbclient()
    nb = write_notebook(tmp_path / "deps.ipynb", "print('never runs')")
    code = cli_main(["run-notebook", str(nb), "--image", IMAGE, "--python", python, "--wait"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "lacks nbformat, nbclient" in lines[0] and "--install-deps" in lines[0], err
    assert "error: The image's Python" in out  # shown while the task runs, before the job ended


def test_job_that_fails_before_the_upload_ends_the_wait_with_its_reason(nb_client, tmp_path):
    """The task cannot create its run folder (on the demo: a shared /tmp/pai-nb owned by
    another uid). Before, the bootstrap went on waiting for the notebook in the wrong folder
    and --wait hung; now the job ends at once and following the run ends within seconds with
    one line carrying the task's last stderr line. The real bootstrap runs, pointed at a folder
    that cannot be made (below a file) -- the fault a foreign-owned parent made on the demo."""
    from pai_magic.core.notebook.run import bootstrap_commands

    nb = write_notebook(tmp_path / "early.ipynb", "print('never runs')")
    run = prepare_run(NotebookRunSpec(notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "out")))
    for role in run.protocol["taskRoles"].values():
        role["commands"] = bootstrap_commands(f"/dev/null/{run.name}")
    submit_run(nb_client, run)
    box: dict = {}
    started = time.monotonic()
    thread = threading.Thread(target=lambda: box.update(result=follow_run(nb_client, run)), daemon=True)
    thread.start()
    thread.join(90)
    took = time.monotonic() - started
    assert "result" in box, f"following a run whose task cannot make its folder did not end in {took:.0f} s"
    result = box["result"]
    assert result.state == "FAILED", result
    assert "\n" not in result.message and "cannot create directory" in result.message, result
    assert took < 30, f"took {took:.1f} s to see a job that failed at once"
