"""Job magics: ``%%pai_job``, ``%pai_jobs``, ``%pai_job``, ``%pai_stop``, ``%pai_logs``.

``PaiMagics`` is also the traitlets configurable that holds the notebook's defaults
(``%config PaiMagics.image = '...'``, or ``c.PaiMagics.image`` in an IPython config file),
which every other pai magic reads through ``get_session(shell).options()``.

Each magic parses its line, calls the core, renders; the core (protocol, client) is
imported inside the magic bodies so that ``%load_ext pai_magic`` stays fast.
"""
from __future__ import annotations

import re
import sys
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument

from pai_magic.magics.args import (
    check_var,
    help_text,
    lazy_magic_arguments,
    parse_line,
    parse_task,
)
from pai_magic.magics.errors import friendly, usage_errors
from pai_magic.magics.options import PaiOptions
from pai_magic.magics.render import Table, View, esc, job_detail_view, job_table
from pai_magic.magics.session import get_session

_PROTOCOL_HINT_RE = re.compile(r"^\s*(protocolVersion|taskRoles)\s*:", re.MULTILINE)


def split_job_ref(text: str) -> tuple[str, str | None]:
    """``NAME`` or ``USER~NAME`` (as the portal and the REST URLs write it) -> (name, user)."""
    from pai_magic.core.client import parse_job_ref
    from pai_magic.core.errors import InvalidInputError

    try:
        user, name = parse_job_ref(text)
    except InvalidInputError as err:
        raise UsageError(f"{err} %pai_jobs lists yours.") from None
    return name, user


def looks_like_protocol(cell: str) -> bool:
    """A cell that declares ``protocolVersion:`` or ``taskRoles:`` at the start of a line is
    a job document; anything else is shell commands."""
    return bool(_PROTOCOL_HINT_RE.search(cell or ""))


@magics_class
class PaiMagics(PaiOptions, Magics):
    """Submit, list, follow and stop OpenPAI jobs from the notebook; its traits (the
    ``%config PaiMagics.x`` options) live in :mod:`.options`."""

    shell: Any  # the InteractiveShell: set by IPython when the class is registered

    # ------------------------------------------------------------------ %%pai_job / %pai_job
    @lazy_magic_arguments()
    @argument("name", nargs="?", help="job name stem; a short unique suffix is added (OpenPAI never reuses names)")
    @argument("--image", help="docker image, e.g. --image pytorch/pytorch:latest")
    @argument("--gpu", type=int, help="GPUs per instance, e.g. --gpu 1")
    @argument("--cpu", type=int, help="CPUs per instance, e.g. --cpu 4")
    @argument("--memory", help="memory per instance, e.g. --memory 8G")
    @argument("--vc", help="virtual cluster, e.g. --vc default")
    @argument("--instances", type=int, help="task instances, e.g. --instances 2")
    @argument("--storage", action="append", metavar="NAME[:PATH]",
              help="mount a cluster storage (repeatable), e.g. --storage confignfs:/data")
    @argument("--sync", metavar="LOCAL_DIR[:STORAGE]",
              help="upload a folder to your folder on a storage first (only changes move); the job starts in it, "
                   "e.g. --sync .")
    @argument("--ssh", action="store_true", help="add the ssh runtime plugin with your public key")
    @argument("--keep-alive", action="store_true", help="end the commands with `sleep infinity` (for SSH)")
    @argument("--retry", type=int, help="retries on failure, e.g. --retry 2")
    @argument("--wait", dest="wait", action="store_const", const=True, default=None,
              help="block until the job ends (Ctrl-C detaches, the job keeps running)")
    @argument("--no-wait", dest="wait", action="store_const", const=False, help="return at once (default)")
    @argument("--dry-run", action="store_true", help="show the protocol that would be sent, secrets masked")
    @argument("-o", "--output", metavar="VAR", help="store the job handle in VAR, e.g. -o job")
    @line_cell_magic
    def pai_job(self, line: str, cell: str | None = None) -> Any:
        """Submit a job (cell form) or show one (line form).

        Cell form: the cell body is the job's shell commands, or a whole protocol YAML
        document (``protocolVersion: 2`` ...) whose fields the options then override.
        Returns a job handle at once and shows a live status line; other cells run meanwhile.

        Examples::

            %%pai_job train --gpu 1 --memory 8G --image pytorch/pytorch:latest
            python train.py --epochs 3

            %%pai_job --dry-run
            protocolVersion: 2
            ...

        Line form: ``%pai_job NAME [-o VAR]`` shows one job (state, tasks, diagnostics),
        e.g. ``%pai_job train_ab12cd -o job``; NAME may be USER~NAME.
        """
        if cell is None:
            return self._show_job(line)
        return self._submit(line, cell)

    @lazy_magic_arguments("pai_job")
    @argument("name", help="job name (USER~NAME for another user's), e.g. train_ab12cd")
    @argument("-o", "--output", metavar="VAR", help="store a job handle in VAR, e.g. -o job")
    def _pai_job_line(self, line: str) -> None:
        """%pai_job NAME [-o VAR]"""

    @friendly
    def _show_job(self, line: str) -> Any:
        args = parse_line(self._pai_job_line, line)
        var = check_var(args.output)
        name, user = split_job_ref(args.name)
        from pai_magic.magics.handle import JobHandle

        session = get_session(self.shell)
        client = session.client()
        with usage_errors(url=session.known_url(), job=name):
            detail = client.get_job(name, user=user)
        handle = JobHandle(detail.name or name, detail.user or user or session.profile().user, session=session)
        if var:
            self.shell.user_ns[var] = handle
        return job_detail_view(detail, now=time.time())

    @friendly
    def _submit(self, line: str, cell: str) -> Any:
        args = parse_line(self.pai_job, line)
        var = check_var(args.output)
        session = get_session(self.shell)
        opts = session.options()
        job = self._build_job(args, cell, session, opts)
        if args.sync:
            from pai_magic.core.storage.jobsync import apply_sync, progress_line

            with usage_errors(url=session.known_url()):
                job, synced = apply_sync(session.client(), job, args.sync, dry_run=args.dry_run,
                                         on_progress=lambda p: print(progress_line(p), flush=True),
                                         on_status=lambda t: print(t, flush=True))
            print(synced.message, flush=True)

        from pai_magic.core.protocol import dump_protocol, mask_secrets

        if args.dry_run:
            masked = mask_secrets(job)
            text = dump_protocol(masked)
            if var:
                self.shell.user_ns[var] = masked
            return View(text, f"<pre>{esc(text)}</pre>")

        name = job["name"]
        client = session.client()
        from pai_magic.core.jobs import submit_job

        with usage_errors(url=session.known_url(), job=name):
            submitted = submit_job(client, job)
        from pai_magic.magics.handle import JobHandle

        handle = JobHandle(submitted or name, session.profile().user, session=session)
        if var:
            self.shell.user_ns[var] = handle
        wait = opts.wait if args.wait is None else args.wait
        if wait:
            handle.display_status()  # marks the handle shown in this cell: the result adds no 2nd line
            self._block(handle)
        # Without --wait the returned handle IS the status: the display hook calls its
        # _ipython_display_, which shows the live line (a terminal reads "Out[n]: [pai] ...").
        return handle

    def _build_job(self, args: Any, cell: str, session: Any, opts: Any) -> dict:
        """The protocol dict to submit: the options (and the notebook's defaults) go through the
        core's one job form check (pai_magic.core.jobform, the same for the CLI, the sidebar
        and the panel), with the cell's commands, or written over the cell's YAML job."""
        from pai_magic.core import jobform
        from pai_magic.core import protocol as proto

        form: dict[str, Any] = {
            "name": args.name, "gpu": args.gpu, "cpu": args.cpu, "memory": args.memory,
            "virtualCluster": args.vc, "instances": args.instances, "retry": args.retry,
            "storages": list(args.storage or []) or None, "ssh": bool(args.ssh), "keepAlive": bool(args.keep_alive)}
        profile = self._profile_or_none(session)

        def ssh_key() -> str:
            return self._ssh_public_key(session)

        with usage_errors(url=session.known_url()):
            if looks_like_protocol(cell):
                job = proto.parse_protocol(cell)
                form["image"] = args.image
                jobform.apply_form(job, form, profile, ssh_key=ssh_key)
                if not job.get("name"):
                    job["name"] = proto.unique_job_name("job")
            else:
                # the notebook's defaults (%config PaiMagics.x) fill what the line leaves out
                for key, default in (("gpu", opts.gpu), ("cpu", opts.cpu), ("memory", opts.memory),
                                     ("virtualCluster", opts.virtual_cluster)):
                    if form[key] is None:
                        form[key] = default
                form["image"] = args.image or opts.image or "ubuntu:22.04"
                form["commands"] = cell
                job = jobform.protocol_from_form(form, profile, ssh_key=ssh_key)
            proto.validate_protocol(job)
        return job

    @staticmethod
    def _profile_or_none(session: Any) -> Any:
        try:
            return session.profile()
        except Exception:  # noqa: BLE001 - no profile yet: a dry run still works without one
            return None

    @staticmethod
    def _ssh_public_key(session: Any) -> str:
        """The hook for ``--ssh``: the user's public key line, from the SSH core module."""
        try:
            from pai_magic.core.ssh.keys import ensure_key
        except ImportError:
            raise UsageError("--ssh needs pai_magic's SSH support, which this installation lacks.") from None
        configured = None
        try:
            configured = session.profile().ssh_key
        except Exception:  # noqa: BLE001 - no profile: use the default key search
            configured = None
        with usage_errors():
            return ensure_key(configured).public_line

    def _block(self, handle: Any) -> None:
        """``--wait``: same display, blocking; Ctrl-C detaches and leaves the job running."""
        session = handle.session
        board = session.board()
        try:
            board.wait(handle.name, handle.user)
        except KeyboardInterrupt:
            board.detach(handle.name, handle.user, "detached: the job keeps running")
            print(f"Stopped waiting; job {handle.name} keeps running. Re-attach with "
                  f"pai_magic.job({handle.name!r}) or stop it with %pai_stop {handle.name}.")

    # ------------------------------------------------------------------ %pai_jobs
    @lazy_magic_arguments()
    @argument("--state", help="only jobs in this state, e.g. --state RUNNING")
    @argument("--vc", help="only this virtual cluster, e.g. --vc default")
    @argument("--user", help="another user's jobs, e.g. --user alice")
    @argument("--all", action="store_true", help="every user's jobs")
    @argument("--limit", type=int, default=20, help="at most N jobs, newest first (default 20), e.g. --limit 50")
    @line_magic
    @friendly
    def pai_jobs(self, line: str) -> Any:
        """List jobs, newest first: name, user, state, virtual cluster, GPUs, submitted, duration, exit code.

        Example: ``%pai_jobs --state RUNNING --limit 10``
        """
        args = parse_line(self.pai_jobs, line)
        if args.user and args.all:
            raise UsageError("Give either --user U or --all, not both.")
        from pai_magic.core.client import check_list_filter
        from pai_magic.core.models import check_job_state

        user_filter = check_list_filter(args.user, "user")
        if args.user is not None and not user_filter:
            raise UsageError("--user is empty: give a user name, e.g. --user alice.")
        state = check_job_state(args.state)
        vc = check_list_filter(args.vc, "vc")
        if not 1 <= args.limit <= 1000:
            raise UsageError("--limit must be between 1 and 1000.")
        session = get_session(self.shell)
        client = session.client()
        user = None if args.all else (user_filter or session.profile().user)
        page = client.list_jobs(username=user, state=state, vc=vc, limit=args.limit)
        jobs = list(getattr(page, "items", page))
        total = getattr(page, "total", None)
        return job_table(jobs, total=total, now=time.time())

    # ------------------------------------------------------------------ %pai_vcs
    @line_magic
    @friendly
    def pai_vcs(self, line: str = "") -> Any:
        """Virtual clusters: GPUs free and in use, vCPUs, memory, and whether you may submit there.

        Example: ``%pai_vcs`` (a job or kernel asking for GPUs that are all in use waits)
        """
        if line.strip():
            raise UsageError(f"%pai_vcs takes no arguments, got {line.strip()!r}.")
        from pai_magic.core.virtual_clusters import NO_VCS, VC_COLUMNS, vc_usage

        rows = vc_usage(get_session(self.shell).client())
        return Table(list(VC_COLUMNS), rows=[r.cells() for r in rows], title="Virtual clusters",
                     empty=NO_VCS)

    # ------------------------------------------------------------------ %pai_stop
    @lazy_magic_arguments()
    @argument("name", help="job name (USER~NAME for another user's), e.g. train_ab12cd")
    @line_magic
    @friendly
    def pai_stop(self, line: str) -> None:
        """Stop a job; it goes through STOPPING to STOPPED. Example: ``%pai_stop train_ab12cd``"""
        args = parse_line(self.pai_stop, line)
        name, user = split_job_ref(args.name)
        session = get_session(self.shell)
        client = session.client()
        from pai_magic.core.stopping import stop_job

        with usage_errors(url=session.known_url(), job=name):
            ended = stop_job(client, name, user=user)
        if ended is not None:
            print(f"Job {name} already ended as {ended.state}: nothing to stop.")
        else:
            print(f"Stop requested for job {name}: it goes through STOPPING to STOPPED.")

    # ------------------------------------------------------------------ %pai_logs
    @lazy_magic_arguments()
    @argument("name", help="job name (USER~NAME for another user's), e.g. train_ab12cd")
    @argument("--task", metavar="ROLE/INDEX", help="which task, e.g. --task worker/1 (default: the first)")
    @argument("--stderr", action="store_true", help="standard error instead of standard output")
    @argument("--follow", action="store_true", help="keep streaming new lines until the task ends (Ctrl-C stops)")
    @line_magic
    @friendly
    def pai_logs(self, line: str) -> None:
        """Print a task's log. Example: ``%pai_logs train_ab12cd --task taskrole/0 --follow``"""
        args = parse_line(self.pai_logs, line)
        name, user = split_job_ref(args.name)
        role, index = parse_task(args.task)
        session = get_session(self.shell)
        client = session.client()
        from pai_magic.core.jobs import follow_logs

        interval = float(session.options().follow_interval)
        stream = "stderr" if args.stderr else "stdout"
        wrote_newline = True
        with usage_errors(url=session.known_url(), job=name):
            try:
                for chunk in follow_logs(client, name, role=role, index=index, stream=stream, user=user,
                                         poll=interval, follow=args.follow):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                    wrote_newline = chunk.endswith("\n")
            except KeyboardInterrupt:
                print(f"\n(stopped following; job {name} is not affected)")
                return
        if not wrote_newline:
            sys.stdout.write("\n")


def _pai_job_help() -> str:
    """``%pai_job?`` documents both forms: the cell form's options and the line form's."""
    return (help_text(PaiMagics.pai_job).rstrip() + "\n\nLine form (%pai_job NAME):\n"
            + help_text(PaiMagics._pai_job_line))


PaiMagics.pai_job.getdoc = _pai_job_help  # type: ignore[attr-defined]
