"""A researcher's journey with notebook runs, the defects it found: Ctrl-C on `run-notebook
--wait` (the command hung and the job ran on unwatched), and a notebook that reads a data file
beside it (not in the job: a bare FileNotFoundError, no way to send it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.notebook.conftest import outputs_text, write_notebook

IMAGE = "python:3.11"
REPO = Path(__file__).resolve().parents[2]


def test_ctrl_c_on_wait_stops_the_run_and_keeps_what_ran(cli_env, tmp_path):
    """Before: the first Ctrl-C printed `interrupted` but the command kept following (its
    threads were joined at exit) and the job kept running. Now the run is stopped the way
    `stop` does it: what ran comes back, the job ends STOPPED, exit 130, within seconds."""
    nb = write_notebook(tmp_path / "long.ipynb",
                        "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.5)",
                        "print('never')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from pai_magic.cli import main; sys.exit(main())",
                             "run-notebook", str(nb), "--image", IMAGE, "--wait", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # the first cell runs: its ticks are in the task
            if "cell 1 of 2" in line or time.monotonic() > deadline:
                break
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    runs = list((tmp_path / "out").glob("pai-nb-long_*/long.ipynb"))
    assert len(runs) == 1, err
    assert "tick 0" in outputs_text(runs[0]) and "never" not in outputs_text(runs[0])
    job = runs[0].parent.name
    assert cli_env.wait(job)["jobStatus"]["state"] == "STOPPED"
    assert f"{job} STOPPED" in err and str(runs[0]) in err, err


def test_data_files_beside_the_notebook_go_with_it(cli_env, tmp_path, capsys, monkeypatch):
    """A notebook in a subfolder reads `data.csv` and `conf/lr.txt` beside it. Before: only the
    notebook was uploaded, so the cell failed with a bare FileNotFoundError and no flag could
    send them. Now `--file` sends files and folders (placed as they sit beside the notebook),
    and a run that misses one says how to send it."""
    from pai_magic.cli import main as cli_main

    proj = tmp_path / "proj"
    (proj / "sub" / "conf").mkdir(parents=True)
    (proj / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (proj / "sub" / "conf" / "lr.txt").write_text("0.5\n")
    write_notebook(proj / "sub" / "reads.ipynb",
                   "print('rows', open('data.csv').read().split())\nprint('lr', open('conf/lr.txt').read().strip())")
    monkeypatch.chdir(proj)
    code = cli_main(["run-notebook", "sub/reads.ipynb", "--image", IMAGE, "--wait"])
    out, err = capsys.readouterr()
    assert code == 1 and "FileNotFoundError" in err and "--file" in err, err
    code = cli_main(["run-notebook", "sub/reads.ipynb", "--image", IMAGE, "--wait",
                     "--file", "sub/data.csv", "--file", "sub/conf"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    (line,) = [ln for ln in out.splitlines() if "  SUCCEEDED  " in ln]
    executed = Path(line.split()[-1])
    assert executed.parent.parent == proj / "sub" / "pai-runs", line  # beside the notebook, as documented
    text = outputs_text(executed)
    assert "rows ['a,b', '1,2']" in text and "lr 0.5" in text, text
    code = cli_main(["run-notebook", "sub/reads.ipynb", "--image", IMAGE, "--file", "sub/missing.csv"])
    out, err = capsys.readouterr()
    assert code == 2 and "missing.csv" in err and len(err.strip().splitlines()) == 1, err


def test_sweep_table_says_which_point_each_job_ran(cli_env, tmp_path, capsys):
    """Before: a 2x2 --grid printed four job names and nothing else: which one had lr=0.2? Now
    each line names its point (only the swept names; a fixed -p is the same everywhere)."""
    from pai_magic.cli import main as cli_main

    nb = write_notebook(tmp_path / "sw.ipynb", "print(n, lr, tag)", parameters="n = 0\nlr = 0.0\ntag = ''")
    code = cli_main(["run-notebook", str(nb), "--image", IMAGE, "--wait", "--grid", "-p", "tag", "fixed",
                     "-p", "n", "1", "-p", "n", "2", "-p", "lr", "0.5"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    table = [ln for ln in out.splitlines() if "SUCCEEDED" in ln and "pai-nb-sw_" in ln and ": " not in ln]
    assert len(table) == 2, out
    assert any("n=1" in ln for ln in table) and any("n=2" in ln for ln in table), table
    assert not any("tag=" in ln or "lr=" in ln for ln in table), table


def test_stop_of_a_detached_run_keeps_what_ran(cli_env, tmp_path, capsys):
    """`run-notebook` without --wait, later `pai-magic stop JOB`. Before: a plain job stop, so
    nothing that ran was fetched (the container's disk went with it) and `notebook-result`
    still said RUNNING. Now stopping a notebook run saves and fetches what ran first."""
    from pai_magic.cli import main as cli_main

    nb = write_notebook(tmp_path / "det.ipynb", "print('ran first', flush=True)", "import time\ntime.sleep(300)")
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "--json"]) == 0
    full = json.loads(capsys.readouterr().out)["runs"][0]["job"]
    job = full.split("~")[1]
    deadline = time.monotonic() + 120
    while "cell 2 of 2" not in cli_env.log_text(job, "taskrole"):  # the runner's own log line
        assert time.monotonic() < deadline, cli_env.log_text(job, "taskrole")
        time.sleep(0.2)
    assert cli_main(["stop", job, "--wait"]) == 0
    capsys.readouterr()
    assert cli_env.job(job)["jobStatus"]["state"] == "STOPPED"
    assert cli_main(["notebook-result", job, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "STOPPED" and result["notebook"], result
    assert "ran first" in outputs_text(result["notebook"])
