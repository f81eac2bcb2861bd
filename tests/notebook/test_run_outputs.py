"""Files a notebook run writes beside itself in the task come back beside the executed copy, on
the embedded backend over real SSH: new files and sent files it changed, within the limit, also
when a later cell fails; never the files sent in unchanged, links, caches, or the runner's own."""
from __future__ import annotations

import json
from pathlib import Path

from pai_magic.cli import main as cli_main
from pai_magic.core.notebook import NotebookRunSpec, find_result, run_notebook
from tests.notebook.conftest import write_notebook

IMAGE = "python:3.11"


def test_files_the_notebook_wrote_come_back_within_the_limit_also_when_a_cell_fails(nb_client, tmp_path):
    (tmp_path / "data.csv").write_text("x\n7\n")
    (tmp_path / "notes.txt").write_text("old\n")
    nb = write_notebook(
        tmp_path / "writes.ipynb",
        "import os\nos.makedirs('plots', exist_ok=True)\nopen('plots/loss.txt', 'w').write('0.5\\n')",
        "open('notes.txt', 'a').write('new\\n')",                   # a sent file it changes
        "open('big.bin', 'wb').write(os.urandom(3_000_000))",        # over the 2 MB limit below
        "os.symlink('/etc/hostname', 'hostname-link')",
        "os.makedirs('__pycache__', exist_ok=True)\nopen('__pycache__/m.pyc', 'w').write('x')",
        "print(open('data.csv').read().split())\nraise ValueError('after the files')")
    seen = []
    result = run_notebook(nb_client, NotebookRunSpec(
        notebook=str(nb), image=IMAGE, out_root=str(tmp_path / "runs"), outputs_mb=2,
        files=[str(tmp_path / "data.csv"), str(tmp_path / "notes.txt")]), on_progress=seen.append)
    assert result.state == "FAILED" and "ValueError" in result.message, result
    out = Path(result.out_dir)
    assert (out / "plots" / "loss.txt").read_text() == "0.5\n"
    assert (out / "notes.txt").read_text() == "old\nnew\n"
    assert sorted(result.outputs) == ["notes.txt", "plots/loss.txt"], result.outputs
    for absent in ("data.csv", "big.bin", "hostname-link", "__pycache__", "input.ipynb", "status.json",
                   "pai_nb_runner.py", ".inputs.json"):
        assert not (out / absent).exists(), absent
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "plots", "writes.ipynb"]
    message = result.outputs_message
    assert message.startswith("2 files the notebook wrote came back beside it"), message
    assert "1 file (3.0 MB) stayed in the task, over the limit of 2 MB a run: big.bin" in message, message
    assert "--outputs-mb" in message
    assert find_result(result.job).outputs == result.outputs  # every face reads it from the index
    assert any(p.state == "FAILED" and "came back beside it" in p.line() for p in seen), [p.line() for p in seen]


def test_cli_shows_the_files_and_refuses_a_negative_limit(cli_env, tmp_path, capsys):
    nb = write_notebook(tmp_path / "plot.ipynb", "open('result.json', 'w').write('{\"acc\": 0.9}')")
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "--outputs-mb", "-1", "--wait"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["pai-magic: --outputs-mb must be 0 (bring none back) or more, got -1."], err
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "--wait"]) == 0
    out, err = capsys.readouterr()
    assert "1 file the notebook wrote came back beside it: result.json" in out, out
    job = next(line.split()[0] for line in out.splitlines() if "SUCCEEDED" in line and "~pai-nb-" in line)
    back = Path(find_result(job).out_dir) / "result.json"
    assert json.loads(back.read_text()) == {"acc": 0.9}
    assert cli_main(["run-notebook", str(nb), "--image", IMAGE, "--wait", "--outputs-mb", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr()[0])
    assert data["runs"][0]["outputs"] == [] and not (Path(data["runs"][0]["out_dir"]) / "result.json").exists()
