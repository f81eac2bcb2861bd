"""Job verbs: ``jobs``, ``submit``, ``job``, ``stop``, ``logs``. Each parses, calls the core, renders."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from pai_magic.cli.common import client_for, emit, table, wants_json, when
from pai_magic.core.diagnostics import readable_diagnostics
from pai_magic.core.errors import InvalidInputError
from pai_magic.core.kinds import kind_label
from pai_magic.core.models import JOB_STATES, JobDetail, summary_line


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = subparsers.add_parser("jobs", help="list jobs (yours by default)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", help="jobs of this user")
    who.add_argument("--all", action="store_true", help="jobs of every user")
    p.add_argument("--state", type=str.upper, choices=JOB_STATES, help="only jobs in this state")
    p.add_argument("--vc", help="only jobs of this virtual cluster")
    p.add_argument("--keyword", help="text to find in user, job or virtual cluster names")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    p.add_argument("--offset", type=int, default=0, help="skip this many (paging)")
    p.set_defaults(func=run_jobs)

    s = subparsers.add_parser(
        "submit", help="submit a job file, or a job built from options and a command",
        description="Submit FILE.yaml (protocol v2; '-' reads stdin), or build a job: "
                    "`pai-magic submit --image IMG [options] -- COMMAND...`. Options given with a FILE override it.",
        usage="pai-magic submit [FILE.yaml | --image IMG] [options] [-- COMMAND ...]")
    s.add_argument("items", nargs="*", metavar="FILE | COMMAND", help=argparse.SUPPRESS)
    s.add_argument("--image", help="Docker image (registry host included for private ones)")
    s.add_argument("-c", "--command", action="append", default=[], metavar="LINE",
                   help="a shell line to run (repeat for several lines)")
    s.add_argument("--name", metavar="STEM", help="job name stem; a unique suffix is added")
    s.add_argument("--gpu", type=int, help="GPUs per instance")
    s.add_argument("--cpu", type=int, help="CPUs per instance")
    s.add_argument("--memory", metavar="SIZE", help="memory per instance, e.g. 8G or 512M")
    s.add_argument("--vc", help="virtual cluster (default: the profile's)")
    s.add_argument("--instances", type=int, help="instances of the task role")
    s.add_argument("--storage", action="append", default=[], metavar="NAME[:PATH]",
                   help="mount a storage (default path /mnt/NAME); repeatable")
    s.add_argument("--sync", metavar="LOCAL_DIR[:STORAGE]",
                   help="upload a folder to your folder on a storage first (only changes move) and start the job in it")
    s.add_argument("--ssh", action="store_true", help="enable SSH into the job with your key")
    s.add_argument("--keep-alive", action="store_true", help="keep the container up after the commands")
    s.add_argument("--retry", type=int, help="job retry count")
    s.add_argument("--wait", action="store_true", help="wait until the job ends (exit 1 unless SUCCEEDED)")
    s.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    s.add_argument("--dry-run", action="store_true", help="print the job protocol, do not submit")
    s.set_defaults(func=run_submit)

    j = subparsers.add_parser("job", help="show one job (state, tasks, ports)")
    j.add_argument("name", help="job name (USER~NAME for another user's job)")
    j.add_argument("--wait", action="store_true", help="wait until the job ends (exit 1 unless SUCCEEDED)")
    j.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    j.set_defaults(func=run_job)

    st = subparsers.add_parser("stop", help="stop a job")
    st.add_argument("name", help="job name (USER~NAME for another user's job)")
    st.add_argument("--wait", action="store_true", help="wait until it has stopped")
    st.add_argument("--timeout", type=float, default=120.0, help="with --wait: seconds (default 120)")
    st.set_defaults(func=run_stop)

    lg = subparsers.add_parser("logs", help="print a task's log")
    lg.add_argument("name", help="job name (USER~NAME for another user's job)")
    lg.add_argument("--task", metavar="ROLE/INDEX", help="which task (default: the first role, index 0)")
    stream = lg.add_mutually_exclusive_group()
    stream.add_argument("--stderr", action="store_true", help="the stderr log instead of stdout")
    stream.add_argument("--both", action="store_true", help="stdout and stderr interleaved (the 'all' log)")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    lg.add_argument("--tail", action="store_true", help="only the end of a long log")
    lg.add_argument("--timeout", type=float, help="with --follow: give up after this many seconds")
    lg.set_defaults(func=run_logs)


# ----- jobs ----------------------------------------------------------------------------

def _labelled(name: str) -> str:
    label = kind_label(name)
    return f"{name} ({label})" if label else name


def run_jobs(args: argparse.Namespace) -> int:
    if args.limit < 0 or args.offset < 0:
        raise InvalidInputError("--limit and --offset must be >= 0.")
    from pai_magic.core.client import check_list_filter

    user, vc = check_list_filter(args.user, "user"), check_list_filter(args.vc, "vc")
    with client_for(args) as client:
        username = None if args.all else (user or client.user or None)
        page = client.list_jobs(username=username, state=args.state, vc=vc, keyword=args.keyword,
                                offset=args.offset, limit=args.limit)
    data = {"total": page.total, "offset": page.offset, "limit": page.limit,
            "items": [dict(vars(s), full_name=s.full_name, kind_label=kind_label(s.name))
                      for s in page.items]}

    def text() -> str:
        if not page.items:
            return "No jobs." if not args.offset else f"No jobs past offset {args.offset}."
        rows = [(_labelled(s.name), s.user, s.state, s.virtual_cluster or "-", s.gpus, when(s.submission_time),
                 "" if s.exit_code is None else s.exit_code) for s in page.items]
        out = table(rows, ("NAME", "USER", "STATE", "VC", "GPUS", "SUBMITTED", "EXIT"))
        if page.total is not None and page.total > len(page.items):
            out += (f"\n{len(page.items)} of {page.total} shown (--offset {args.offset + len(page.items)} "
                    "for more)")
        return out

    emit(args, data, text)
    return 0


# ----- submit --------------------------------------------------------------------------

def _command_lines(args: argparse.Namespace, items: list[str]) -> list[str]:
    lines = list(args.command)
    if items:
        lines.append(items[0] if len(items) == 1 else shlex.join(items))
    return lines


def _form(args: argparse.Namespace) -> dict[str, Any]:
    """The options as the core's job form (pai_magic.core.jobform checks them, for every face)."""
    return {"name": args.name, "image": args.image, "gpu": args.gpu, "cpu": args.cpu, "memory": args.memory,
            "virtualCluster": args.vc, "instances": args.instances, "retry": args.retry,
            "storages": list(args.storage) or None, "ssh": bool(args.ssh), "keepAlive": bool(args.keep_alive)}


def build_job(args: argparse.Namespace, profile: Any) -> tuple[dict[str, Any] | str, str]:
    """The job to submit (dict, or the file's own text when nothing overrides it) and its name."""
    from pai_magic.core import jobform
    from pai_magic.core import protocol as proto

    items = list(args.items)
    form = _form(args)
    if args.image is None:
        if len(items) != 1:
            raise InvalidInputError("Give one job FILE.yaml, or --image IMG and a command after `--` "
                                    "(see `pai-magic submit --help`).")
        if args.command:
            raise InvalidInputError("--command needs --image (a FILE has its own commands).")
        path = items[0]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"Cannot read job file {path}: {exc.strerror or exc}.") from None
        job = proto.parse_protocol(text)
        overrides = jobform.overrides_from_form(form, profile, ssh_key=lambda: _ssh_key_line(profile))
        if not overrides:
            jobform.check_job_images(job)
            return text, str(job.get("name") or "")  # exactly what the person wrote
        jobform.apply_overrides_checked(job, overrides)
        return job, str(job.get("name") or "")
    form["commands"] = _command_lines(args, items)
    job = jobform.protocol_from_form(form, profile, ssh_key=lambda: _ssh_key_line(profile))
    return job, str(job["name"])


def _ssh_key_line(profile: Any) -> str:
    from pai_magic.core.ssh.keys import ensure_key

    return ensure_key(profile.ssh_key).public_line


def run_submit(args: argparse.Namespace) -> int:
    from pai_magic.core import protocol as proto
    from pai_magic.core.jobs import submit_job

    if args.timeout is not None and not args.wait:
        raise InvalidInputError("--timeout goes with --wait.")
    with client_for(args) as client:
        job, name = build_job(args, client.profile)
        if args.sync:
            from pai_magic.core.storage.jobsync import apply_sync, progress_line

            def on_progress(p: Any) -> None:
                sys.stderr.write(progress_line(p) + "\n")

            def on_status(text: str) -> None:
                sys.stderr.write(text + "\n")

            quiet = wants_json(args)
            job, synced = apply_sync(client, job, args.sync, dry_run=args.dry_run,
                                     on_progress=None if quiet else on_progress,
                                     on_status=None if quiet else on_status)
            if not wants_json(args):
                sys.stderr.write(synced.message + "\n")
        if args.dry_run:
            parsed = proto.validate_protocol(job)
            masked = proto.mask_secrets(parsed)
            emit(args, {"name": name, "protocol": masked, "submitted": False}, proto.dump_protocol(masked))
            return 0
        name = submit_job(client, job)
        user = client.user
        if not args.wait:
            emit(args, {"name": name, "user": user, "full_name": f"{user}~{name}", "submitted": True},
                 f"Submitted {user}~{name}. Follow it with `pai-magic job {name} --wait` or "
                 f"`pai-magic logs {name} --follow`.")
            return 0
        if not wants_json(args):
            sys.stdout.write(f"Submitted {user}~{name}; waiting...\n")
            sys.stdout.flush()
        detail = _wait(client, name, args.timeout, quiet=wants_json(args))
    emit(args, dict(_detail_json(detail), submitted=True), _detail_text(detail))
    return 0 if detail.state == "SUCCEEDED" else 1


# ----- job, stop -----------------------------------------------------------------------

def _wait(client: Any, name: str, timeout: float | None, *, quiet: bool) -> JobDetail:
    from pai_magic.core.jobs import wait_for

    last: dict[str, str | None] = {"state": None}

    def progress(detail: JobDetail) -> None:
        if detail.state != last["state"]:
            last["state"] = detail.state
            if not quiet:
                sys.stderr.write(f"{detail.full_name}: {detail.state}\n")
                sys.stderr.flush()

    return wait_for(client, name, timeout=timeout, on_progress=progress, poll=2.0, shared=True)


def _detail_json(detail: JobDetail) -> dict[str, Any]:
    data = vars(detail).copy()
    data["tasks"] = [vars(t) for t in detail.tasks]
    data["full_name"] = detail.full_name
    data["terminal"] = detail.terminal
    return data


def _detail_text(d: JobDetail) -> str:
    lines = [f"{d.full_name}: {d.state}" + ("" if d.exit_code is None else f" (exit code {d.exit_code})"),
             f"  virtual cluster: {d.virtual_cluster or '-'}   submitted: {when(d.submission_time)}"
             f"   completed: {when(d.completed_time)}   retries: {d.retries}"]
    if d.diagnostics:
        lines.append(f"  diagnostics: {summary_line(readable_diagnostics(d.diagnostics) or '', 400)}")
    if d.tasks:
        rows = [(f"{t.role}/{t.index}", t.state, t.container_ip or "-",
                 ", ".join(f"{k}={','.join(map(str, v))}" for k, v in sorted(t.ports.items())) or "-",
                 "" if t.exit_code is None else t.exit_code) for t in d.tasks]
        lines.append(table(rows, ("TASK", "STATE", "IP", "PORTS", "EXIT")))
    return "\n".join(lines)


def run_job(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.wait:
        raise InvalidInputError("--timeout goes with --wait.")
    with client_for(args) as client:
        detail = _wait(client, args.name, args.timeout, quiet=wants_json(args)) if args.wait \
            else client.get_job(args.name)
    emit(args, _detail_json(detail), _detail_text(detail))
    return 1 if args.wait and detail.state != "SUCCEEDED" else 0


def run_stop(args: argparse.Namespace) -> int:
    from pai_magic.core.stopping import stop_job

    with client_for(args) as client:
        detail = stop_job(client, args.name, wait=args.wait, timeout=args.timeout)
        full = f"{client.user}~{args.name}" if "~" not in args.name else args.name
    if detail is None:
        emit(args, {"name": full, "stop_requested": True}, f"Stop requested for {full}.")
    else:
        emit(args, _detail_json(detail), _detail_text(detail))
    return 0


# ----- logs ----------------------------------------------------------------------------

def _task(spec: str | None) -> tuple[str | None, int]:
    if not spec:
        return None, 0
    role, _, index = spec.partition("/")
    if not role or (index and not index.isdigit()):
        raise InvalidInputError(f"--task {spec!r}: write ROLE/INDEX, e.g. taskrole/0.")
    return role, int(index or 0)


def run_logs(args: argparse.Namespace) -> int:
    from pai_magic.core.jobs import follow_logs

    if args.timeout is not None and not args.follow:
        raise InvalidInputError("--timeout goes with --follow.")
    role, index = _task(args.task)
    stream = "stderr" if args.stderr else "all" if args.both else "stdout"
    with client_for(args) as client:
        if args.follow:
            for text in follow_logs(client, args.name, role=role, index=index, stream=stream,
                                    timeout=args.timeout):
                if wants_json(args):
                    emit(args, {"name": args.name, "stream": stream, "text": text})
                else:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            return 0
        chunk = client.task_log_text(args.name, role, index, stream=stream, tail=args.tail)
    if wants_json(args):
        emit(args, {"name": args.name, "role": role, "index": index, "stream": stream, "text": chunk.text})
    else:
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    return 0
