"""``%pai_run_notebook``: run a notebook as an OpenPAI job (or a sweep of them) from a notebook.

Thin over :mod:`pai_magic.core.notebook`: the line is parsed here, the runs are prepared and
submitted (once each) while the cell runs, so a bad value or a refused submit is a one-line
``UsageError`` at once; then each run is followed by a daemon thread and the cell returns. One
live line per run ("cell 3 of 10 ...") is kept up to date in the cell's output (replaced in
place in Jupyter, printed on change in a terminal). ``--wait`` blocks until every run ended;
interrupting the kernel then stops the runs (what ran comes back), as Ctrl-C does in the CLI.
A warning of the core (parameters put at the top of a notebook with no ``parameters`` cell) is
shown once, as its own line above the live lines; the runs go ahead.
The returned :class:`NotebookRuns` handle has ``.wait()``, ``.stop()`` and ``.results``.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument

from pai_magic.magics.args import check_var, lazy_magic_arguments, parse_line, parse_memory
from pai_magic.magics.errors import friendly
from pai_magic.magics.render import View, esc
from pai_magic.magics.session import get_session
from pai_magic.magics.status import publish, rich_frontend

_COLORS = {"SUCCEEDED": "#1a7f37", "FAILED": "#cf222e", "STOPPED": "#9a6700", "TIMEOUT": "#cf222e"}


class NotebookRuns:
    """The runs one ``%pai_run_notebook`` started: live lines, ``wait()``, ``stop()``, ``results``.

    The following is the core's (:class:`~pai_magic.core.notebook.sweep.RunFollowers`); this
    keeps one line per run and renders them.
    """

    def __init__(self, shell: Any, client: Any, runs: list[Any], *, rich: bool) -> None:
        from pai_magic.core.notebook.params import sweep_labels
        from pai_magic.core.notebook.sweep import RunFollowers

        self.shell = shell
        self.rich = rich
        self.followers = RunFollowers(client, runs, on_progress=self._progress)
        self.lines: dict[str, str] = {self.followers.job(r): f"{self.followers.job(r)}: submitted" for r in runs}
        self.states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._display_id = f"pai-magic-nb-{uuid.uuid4().hex}"
        self.warnings: list[str] = []
        labels = sweep_labels([dict(r.spec.parameters) for r in runs])
        self.labels = {job: f"  [{label}]" for job, label in zip(self.lines, labels) if label}

    @property
    def jobs(self) -> list[str]:
        return list(self.lines)

    @property
    def results(self) -> dict[str, Any]:
        return self.followers.results

    def start(self) -> "NotebookRuns":
        publish(self.shell, self._view(), display_id=self._display_id if self.rich else None,
                text_only=not self.rich)
        self.followers.start()
        return self

    def _progress(self, p: Any) -> None:
        self._set(p.job, p.state, p.line() + (f" -> {p.notebook}" if p.notebook and p.state in _COLORS else ""))

    def _set(self, job: str, state: str, line: str) -> None:
        with self._lock:
            if self.lines.get(job) == line:
                return
            self.lines[job] = line
            self.states[job] = state
        if self.rich:
            publish(self.shell, self._view(), display_id=self._display_id, update=True)
        else:
            publish(self.shell, View(line + self.labels.get(job, "")), text_only=True)

    def _view(self) -> View:
        lines = {j: line + self.labels.get(j, "") for j, line in self.lines.items()}  # a sweep: which point
        text = "\n".join(lines.values())
        rows = "".join(f"<div style='font-family:monospace;color:{_COLORS.get(self.states.get(j, ''), 'inherit')}'>"
                       f"{esc(line)}</div>" for j, line in lines.items())
        return View(text, f"<div class='pai-magic-nb-runs'>{rows}</div>")

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until every run ended (or ``timeout`` s); Ctrl-C here stops waiting, not the runs."""
        self.followers.wait(timeout)
        return dict(self.results)

    def stop(self) -> None:
        """Interrupt every run's kernel, fetch what ran, stop the jobs (they end STOPPED)."""
        self.followers.stop()

    @property
    def done(self) -> bool:
        return self.followers.done

    def __repr__(self) -> str:
        return self._view().text

    def _repr_html_(self) -> str:
        return self._view().html


def warning_view(message: str) -> View:
    """A core warning as the notebook shows one: a line of its own, in the warning colour."""
    return View(f"Warning: {message}", f"<div style='color:#9a6700'>Warning: {esc(message)}</div>")


@magics_class
class NotebookMagics(Magics):
    """Notebooks as cluster jobs."""

    @lazy_magic_arguments()
    @argument("notebook", help="the .ipynb file to run")
    @argument("--image", help="Docker image with Python, nbclient and ipykernel (default: PaiMagics.image)")
    @argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
              help="a parameter (read as papermill does); repeat a NAME to sweep it, one job per value")
    @argument("--grid", action="store_true", help="sweep every combination of the repeated parameters")
    @argument("--wait", action="store_true", help="block until every run ended")
    @argument("--out", metavar="DIR", help="where run folders go (default: pai-runs beside the notebook)")
    @argument("--html", action="store_true", help="also write the executed notebook as HTML")
    @argument("--timeout", type=float, metavar="S", help="stop a run after S seconds; what ran comes back")
    @argument("--gpu", type=int, help="GPUs (default: PaiMagics.gpu or 0)")
    @argument("--cpu", type=int, help="CPUs (default: PaiMagics.cpu or 1)")
    @argument("--memory", help="memory, e.g. 8G (default: PaiMagics.memory or 4G)")
    @argument("--install-deps", action="store_true", help="pip-install nbclient and ipykernel in the task first")
    @argument("--storage", metavar="NAME[:PATH]",
              help="also keep the executed notebook on this storage (pai-nb-runs/<job>/), durable")
    @argument("--python", metavar="PATH", help="the image's Python, when python3 is not on its PATH")
    @argument("--file", dest="files", action="append", default=[], metavar="PATH",
              help="a file or folder the notebook reads, sent into the job beside it (repeatable)")
    @argument("--start-timeout", type=float, metavar="S",
              help="stop a job that waits longer than S seconds for resources (default: as long as it takes)")
    @argument("--outputs-mb", type=float, metavar="MB",
              help="files the notebook writes beside itself come back into its run folder, up to MB a run "
                   "(default 1024; 0: none)")
    @argument("-o", "--out-var", dest="var", metavar="VAR", help="store the runs' handle in this variable")
    @line_magic
    @friendly
    def pai_run_notebook(self, line: str = "") -> NotebookRuns | None:
        """Run a notebook as an OpenPAI job with parameters and get the executed copy back.

        Example: ``%pai_run_notebook train.ipynb --image python:3.11 -p lr 0.1 -p lr 0.01``
        """
        from pai_magic.core.notebook import NotebookRunSpec, parse_pairs, sweep_points
        from pai_magic.core.notebook.run import run_warnings
        from pai_magic.core.notebook.sweep import prepare_sweep, submit_sweep

        args = parse_line(self.pai_run_notebook, line)
        var = check_var(args.var)
        session = get_session(self.shell)
        opts = session.options()
        points = sweep_points(parse_pairs(args.parameter), grid=args.grid)
        client = session.client()
        memory = parse_memory(args.memory or getattr(opts, "memory", None) or "4G")
        spec = NotebookRunSpec(notebook=args.notebook, image=args.image or opts.image,
                               gpu=args.gpu if args.gpu is not None else (opts.gpu or 0),
                               cpu=args.cpu if args.cpu is not None else (opts.cpu or 1),
                               memory_mb=memory or 4096,
                               virtual_cluster=opts.virtual_cluster or client.profile.virtual_cluster,
                               timeout=args.timeout, html=args.html, install_deps=args.install_deps,
                               out_root=args.out, python=args.python, storage=args.storage,
                               files=args.files, start_timeout=args.start_timeout,
                               **({} if args.outputs_mb is None else {"outputs_mb": args.outputs_mb}))
        runs = prepare_sweep(spec, points, ssh_key_path=client.profile.ssh_key)
        submitted = submit_sweep(client, runs)
        failed = [(r, e) for r, e in submitted if e is not None]
        ok = [r for r, e in submitted if e is None]
        if failed and not ok:
            raise failed[0][1]
        rich = rich_frontend(self.shell, getattr(opts, "display", "auto"))
        handle = NotebookRuns(self.shell, client, ok, rich=rich)
        handle.warnings = run_warnings(runs)
        for warning in handle.warnings:  # once, above the live lines (not part of them: they repeat)
            publish(self.shell, warning_view(warning), text_only=not rich)
        for run, err in failed:
            handle.lines[f"{client.user}~{run.name}"] = f"{run.name}: not submitted: {err}"
        if var and self.shell is not None:
            self.shell.user_ns[var] = handle
        handle.start()
        if args.wait:
            try:
                results = handle.wait()
            except KeyboardInterrupt:  # the core's rule (sweep.follow_runs): an interrupt stops the runs
                from pai_magic.core.notebook.sweep import INTERRUPT_LINE

                handle.stop()
                publish(self.shell, View(INTERRUPT_LINE), text_only=True)
                try:
                    results = handle.wait()
                except KeyboardInterrupt:
                    raise UsageError("Stopped waiting; the runs are being stopped and their executed notebooks "
                                     "fetched: see them with `%pai_jobs`.") from None
            bad = [r for r in results.values() if r.state != "SUCCEEDED"]
            if bad:
                r = bad[0]
                where = f"; executed notebook: {r.notebook}" if r.notebook else ""
                raise UsageError(f"{r.job} {r.state}: {r.message}{where}")
        # with -o the live lines above are the cell's only output (a returned handle would show
        # a second, frozen copy of them); without it the handle is the cell's value
        return None if var else handle
