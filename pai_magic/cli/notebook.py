"""``pai-magic run-notebook`` and ``pai-magic notebook-result``: a notebook as a cluster job.

The verbs parse, call :mod:`pai_magic.core.notebook` and render. Progress goes to stdout one
line per change; the final verdict of a run that did not succeed is ONE line on stderr naming
the failed cell (exit 1), like ``submit --wait``. A warning of the core (parameters put at the
top of a notebook with no ``parameters`` cell) is one ``warning:`` line on stderr, once per
command; the run goes ahead and the exit code does not change.
"""
from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from pai_magic.cli.common import client_for, emit, wants_json
from pai_magic.core.jobform import parse_memory_mb
from pai_magic.core.errors import NotFoundError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = subparsers.add_parser(
        "run-notebook", help="run a notebook as a job with parameters; bring the executed copy back",
        description="Upload NOTEBOOK into a job, execute it there with papermill-style parameters (a cell tagged "
                    "`parameters`), follow it cell by cell and bring the executed notebook back into "
                    "OUT/<job>/ (default: pai-runs/ beside the notebook), also when a cell fails, the job is "
                    "stopped or time runs out. Repeating -p for a name sweeps it: one job per value.")
    p.add_argument("notebook", help="the .ipynb file to run")
    p.add_argument("--image", required=True, help="Docker image with Python, nbclient and ipykernel")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter (values read as papermill does); repeat a NAME to sweep it")
    p.add_argument("--grid", action="store_true", help="sweep every combination of the repeated parameters")
    p.add_argument("--wait", action="store_true",
                   help="follow the run to the end and fetch the result (exit 1 unless it succeeded); "
                        "without it the command returns once the notebook runs")
    p.add_argument("--out", metavar="DIR", help="where run folders go (default: pai-runs beside the notebook)")
    p.add_argument("--html", action="store_true", help="also write the executed notebook as HTML")
    p.add_argument("--timeout", type=float, metavar="S", help="stop the run after S seconds; what ran comes back")
    p.add_argument("--gpu", type=int, default=0, help="GPUs (default 0)")
    p.add_argument("--cpu", type=int, default=1, help="CPUs (default 1)")
    p.add_argument("--memory", default="4G", metavar="SIZE", help="memory, e.g. 8G (default 4G)")
    p.add_argument("--vc", help="virtual cluster (default: the profile's)")
    p.add_argument("--name", metavar="STEM", help="job name stem (default: the notebook's name)")
    p.add_argument("--storage", metavar="NAME[:PATH]",
                   help="also keep the executed notebook on this storage (pai-nb-runs/<job>/), durable")
    p.add_argument("--python", metavar="PATH", help="the image's Python, when python3 is not on its PATH")
    p.add_argument("--file", dest="files", action="append", default=[], metavar="PATH",
                   help="a file or folder the notebook reads, sent into the job where it sits beside the "
                        "notebook (repeat for more)")
    p.add_argument("--install-deps", action="store_true",
                   help="pip-install nbclient and ipykernel in the task first if the image lacks them")
    p.add_argument("--start-timeout", type=float, metavar="S",
                   help="stop a job that waits longer than S seconds for resources (a full cluster); default: "
                        "wait as long as the cluster takes")
    p.add_argument("--outputs-mb", type=float, metavar="MB",
                   help="files the notebook writes beside itself come back into its run folder, up to MB "
                        "a run (default 1024; 0: none)")
    p.set_defaults(func=run_notebook_cmd)

    r = subparsers.add_parser(
        "notebook-result", help="where a notebook run's executed copy is; --wait follows and fetches it",
        description="Show a notebook run's state and executed notebook. With --wait, attach to a run started "
                    "without --wait, follow it and fetch the executed notebook.")
    r.add_argument("name", help="the run's job name (USER~NAME or NAME)")
    r.add_argument("--wait", action="store_true", help="follow the run to the end and fetch the result")
    r.set_defaults(func=run_result_cmd)


def _printer(args: argparse.Namespace) -> Any:
    if wants_json(args):
        return None

    def show(progress: Any) -> None:
        sys.stdout.write(progress.line() + "\n")
        sys.stdout.flush()

    return show


def _verdict(results: list[Any]) -> int:
    bad = [r for r in results if r.state != "SUCCEEDED"]
    for r in bad:
        where = f"; executed notebook: {r.notebook}" if r.notebook else ""
        sys.stderr.write(f"pai-magic: {r.job} {r.state}: {r.message}{where}\n")
    return 1 if bad else 0


def _text(results: list[Any]) -> str:
    from pai_magic.core.notebook.params import sweep_labels

    lines = []
    for r, label in zip(results, sweep_labels([r.parameters for r in results])):
        lines.append(f"{r.job}  {r.state}  " + (f"{label}  " if label else "") + f"{r.notebook or r.out_dir}"
                     + (f"  html: {r.html}" if r.html else "")
                     + (f"\n  {r.outputs_message}" if r.outputs_message else ""))
    return "\n".join(lines)


def run_notebook_cmd(args: argparse.Namespace) -> int:
    from pai_magic.core.notebook import NotebookRunSpec, parse_pairs, sweep_points
    from pai_magic.core.notebook.run import run_warnings
    from pai_magic.core.notebook.sweep import follow_runs, prepare_sweep, submit_sweep

    values = parse_pairs(args.parameter)
    points = sweep_points({k: v for k, v in values.items()}, grid=args.grid)
    client = client_for(args)
    spec = NotebookRunSpec(notebook=args.notebook, image=args.image, gpu=args.gpu, cpu=args.cpu,
                           memory_mb=parse_memory_mb(args.memory),
                           virtual_cluster=args.vc or client.profile.virtual_cluster, timeout=args.timeout,
                           html=args.html, install_deps=args.install_deps, out_root=args.out, name=args.name,
                           python=args.python, storage=args.storage, files=args.files,
                           start_timeout=args.start_timeout,
                           **({} if args.outputs_mb is None else {"outputs_mb": args.outputs_mb}))
    runs = prepare_sweep(spec, points, ssh_key_path=client.profile.ssh_key)
    warnings = run_warnings(runs)
    for warning in warnings:  # stderr also under --json: stdout stays one JSON document
        sys.stderr.write(f"pai-magic: warning: {warning}\n")
    sys.stderr.flush()
    submitted = submit_sweep(client, runs)
    errors = [(run, err) for run, err in submitted if err is not None]
    ok = [run for run, err in submitted if err is None]
    if errors and not ok and len({str(err) for _, err in errors}) == 1:  # one cause: one line
        what = f"{errors[0][0].name} was not submitted" if len(errors) == 1 else \
            f"none of the {len(errors)} runs was submitted"
        sys.stderr.write(f"pai-magic: {what}: {errors[0][1]}\n")
    else:
        for run, err in errors:
            sys.stderr.write(f"pai-magic: {run.name} was not submitted: {err}\n")
    if not ok and not wants_json(args):
        return 2  # the stderr line(s) above say why; nothing runs, so no "running" hint
    show = _printer(args)
    stop = threading.Event()

    def interrupted(line: str) -> None:
        sys.stderr.write(f"pai-magic: {line} (Ctrl-C again to quit without waiting)\n")
        sys.stderr.flush()

    results = follow_runs(client, ok, on_progress=show, stop=stop, detach_when_running=not args.wait,
                          on_interrupt=interrupted)
    data = {"runs": [r.as_dict() for r in results], "not_submitted": [run.name for run, _ in errors],
            "warnings": warnings}
    if not args.wait and not stop.is_set():
        hint = "" if wants_json(args) else (
            "\nrunning; fetch the executed notebook with `pai-magic notebook-result JOB --wait` "
            f"(the task keeps it {int(spec.linger)} s after the run)")
        emit(args, data, _text(results) + hint)
        return 2 if errors else 0
    emit(args, data, lambda: _text(results))
    code = _verdict(results)
    if stop.is_set():
        return 130  # Ctrl-C: the runs were stopped (the lines above say where what ran is)
    return 2 if errors and not code else code


def run_result_cmd(args: argparse.Namespace) -> int:
    from pai_magic.core.client import split_job_name
    from pai_magic.core.notebook import find_result
    from pai_magic.core.notebook.run import attach_run, follow_run

    client = client_for(args) if args.wait else None
    user, job = split_job_name(args.name, client.user if client else None) if "~" in args.name or client \
        else ("", args.name)
    full = f"{user}~{job}" if user else job
    if args.wait:
        assert client is not None
        result = follow_run(client, attach_run(client, full), on_progress=_printer(args))
    else:
        found = find_result(full)
        if found is None:
            raise NotFoundError(f"No notebook run {args.name} is recorded on this machine: check the name with "
                                "`pai-magic jobs`, or fetch it with --wait while its task still runs.")
        result = found
    emit(args, result.as_dict(), lambda: _text([result]) + (f"\n{result.message}" if result.message else ""))
    if args.wait:
        return _verdict([result])
    return 0
