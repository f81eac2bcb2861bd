"""SSH into a job's task from the notebook: ``%pai_ssh_key``, ``%pai_ssh_info``, ``%pai_ssh``,
``%pai_upload``, ``%pai_download``; and the SSH lines under a ``%%pai_job --ssh`` status.

Thin: parse, call one function of :mod:`pai_magic.core.ssh`, render. Commands stream their
stdout and stderr into the cell as they arrive; Ctrl-C (interrupt the kernel) closes the
channel, which ends the remote command. A passphrase is asked with getpass (``--passphrase``),
never typed on the line. Nothing heavy is imported at module level.
"""
from __future__ import annotations

import html
import sys
import threading
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from pai_magic.magics.args import check_var, one_line, parse_line
from pai_magic.magics.errors import friendly
from pai_magic.magics.render import View, esc
from pai_magic.magics.session import get_session
from pai_magic.magics.status import register_status_extra


def _copy_line_html(line: str) -> str:
    quoted = html.escape(line, quote=True)
    return (f'<div class="pai-magic-ssh-line" style="margin:2px 0"><code>{quoted}</code> '
            f'<button class="jupyter-button" data-line="{quoted}" '
            f'onclick="navigator.clipboard.writeText(this.dataset.line);this.textContent=\'Copied\'">'
            f'Copy</button></div>')


def ssh_info_view(info: Any) -> View:
    """The portal's text as text; in a notebook each command line gets a copy button."""
    if not info.has_ssh or not info.endpoints:
        return View(info.text, f"<pre>{esc(info.text)}</pre>")
    parts = []
    for ep in info.endpoints:
        parts.append(f"<div style='font-weight:600;margin-top:4px'>SSH to {esc(ep.task)}</div>")
        parts.append(f"<details><summary>The portal's SSH info</summary><pre>{esc(ep.portal_text)}</pre></details>")
        parts.append(_copy_line_html(ep.command))
        if info.key_path:
            parts.append(_copy_line_html(ep.command_with_key(info.key_path)))
    if info.message:
        parts.append(f"<div style='color:#6e7781'>{esc(info.message)}</div>")
    return View(info.text, "".join(parts))


def _split_command(line: str) -> tuple[str, str]:
    """``NAME [options] -- CMD`` -> (options part, CMD verbatim, a shell command line)."""
    text = line or ""
    if text.strip().startswith("--") and text.strip()[2:3] in ("", " "):
        return "", text.strip()[2:].strip()
    head, sep, cmd = text.partition(" -- ")
    if sep:
        return head, cmd.strip()
    if text.rstrip().endswith(" --"):
        return text.rstrip()[:-3], ""
    return text, ""


class _TransferBar:
    """A progress bar (ipywidgets in a kernel that shows widgets), else a few text lines."""

    def __init__(self, verb: str, what: str) -> None:
        self.verb = verb
        self.bar: Any = None
        self.label: Any = None
        self._printed = -1
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and getattr(shell, "kernel", None) is not None:
                import ipywidgets as widgets
                from IPython.display import display

                self.bar = widgets.FloatProgress(min=0.0, max=1.0, description=verb, bar_style="info")
                self.label = widgets.Label(value=what)
                display(widgets.HBox([self.bar, self.label]))
        except Exception:  # noqa: BLE001 - no widgets: text lines instead
            self.bar = None

    def __call__(self, p: Any) -> None:
        mib = 1 << 20
        text = (f"{p.files_done}/{p.files_total} files, {p.bytes_done / mib:.1f} of {p.bytes_total / mib:.1f} MiB"
                f" - {p.path}")
        if self.bar is not None:
            self.bar.value = p.fraction
            self.label.value = text
            return
        step = int(p.fraction * 4)  # text: at most 0%, 25%, 50%, 75%, 100%
        if step != self._printed:
            self._printed = step
            print(f"{self.verb}: {100 * p.fraction:.0f}% ({text})", flush=True)

    def finish(self, ok: bool) -> None:
        if self.bar is not None:
            self.bar.bar_style = "success" if ok else "danger"
            if ok:
                self.bar.value = 1.0


@magics_class
class SshMagics(Magics):
    """Keys, SSH info, commands and file transfer for a job's tasks."""

    shell: Any  # the InteractiveShell: set by IPython when the class is registered

    def _key(self, configured: str | None, passphrase: bool) -> tuple[Any, str | None]:
        from pai_magic.core.ssh.keys import ensure_key

        secret = None
        if passphrase:
            from pai_magic.magics.login import ask_secret

            secret = ask_secret("Passphrase of your SSH key: ") or None
        session = get_session(self.shell)
        if configured is None:
            try:
                configured = session.profile().ssh_key
            except Exception:  # noqa: BLE001 - no profile: the default key search
                configured = None
        return ensure_key(configured, passphrase=secret), secret

    @magic_arguments()
    @argument("--add", action="store_true", help="add the key to your OpenPAI profile (PUT /users/me)")
    @argument("--title", help="title of the key in the profile, e.g. --title laptop")
    @argument("--key", help="private key path (default: profile ssh_key, ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ours)")
    @argument("--passphrase", action="store_true", help="the key has a passphrase: ask for it (getpass)")
    @line_magic
    @friendly
    def pai_ssh_key(self, line: str) -> View:
        """Show the SSH public key pai_magic uses (made the first time none exists); --add puts it
        in your OpenPAI profile, keeping every key already there.

        Examples: ``%pai_ssh_key`` or ``%pai_ssh_key --add``
        """
        args = parse_line(self.pai_ssh_key, line)
        key, _secret = self._key(args.key, args.passphrase)
        note = "generated by pai_magic" if key.generated else "your own key"
        if not args.add:
            text = f"{key.public_line}\n# {key.fingerprint}, {note}: {key.private_path}"
            return View(text, _copy_line_html(key.public_line) +
                        f"<div style='color:#6e7781'>{esc(key.fingerprint)}, {esc(note)}: {esc(key.private_path)}</div>")
        from pai_magic.core.ssh.tasks import add_key_to_profile

        result = add_key_to_profile(get_session(self.shell).client(), key, title=args.title)
        verb = "Added to" if result["added"] else "Already in"
        text = (f"{verb} your OpenPAI profile as {result['title']!r}: {key.public_line}\n"
                "Jobs submitted from now on accept it (the profile's keys are copied into a job when it is submitted).")
        return View(text)

    @magic_arguments()
    @argument("name", help="job name (or USER~NAME)")
    @line_magic
    @friendly
    def pai_ssh_info(self, line: str) -> View:
        """The SSH info of a job's running tasks, as the OpenPAI portal prints it, with copy buttons.

        Example: ``%pai_ssh_info train_3f2a``
        """
        args = parse_line(self.pai_ssh_info, line)
        from pai_magic.core.ssh.info import ssh_info

        return ssh_info_view(ssh_info(get_session(self.shell).client(), args.name))

    @magic_arguments()
    @argument("name", help="job name (or USER~NAME)")
    @argument("--task", help="ROLE/INDEX (default: the first role's task 0), e.g. --task worker/1")
    @argument("--timeout", type=float, help="stop the command after this many seconds")
    @argument("-o", "--output", dest="output", help="also keep {status, stdout, stderr} in this variable")
    @argument("--passphrase", action="store_true", help="the key has a passphrase: ask for it (getpass)")
    @line_magic
    @friendly
    def pai_ssh(self, line: str) -> Any:
        """Run a shell command in a job's task; its output streams into the cell.

        Example: ``%pai_ssh train_3f2a -- nvidia-smi`` or ``%pai_ssh train_3f2a --task worker/1 -- ls /data``.
        Interrupt the kernel (Ctrl-C / stop button) to stop the command.
        """
        head, command = _split_command(line)
        args = parse_line(self.pai_ssh, head)
        if not command:
            raise UsageError("%pai_ssh: give the command after --, e.g. %pai_ssh NAME -- nvidia-smi "
                             "(an interactive shell: pai-magic ssh NAME in a terminal).")
        var = check_var(args.output)
        from pai_magic.core.ssh.tasks import parse_task, run_in_task

        parse_task(args.task)
        key, secret = self._key(None, args.passphrase)
        out: list[str] = []
        err: list[str] = []

        def on_out(text: str) -> None:
            out.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()

        def on_err(text: str) -> None:
            err.append(text)
            sys.stderr.write(text)
            sys.stderr.flush()

        try:
            status = run_in_task(get_session(self.shell).client(), args.name, command, task=args.task,
                                 on_stdout=on_out, on_stderr=on_err, timeout=args.timeout, key=key,
                                 passphrase=secret)
        except KeyboardInterrupt:
            print("\n[interrupted: the channel was closed, which ends the command]", file=sys.stderr, flush=True)
            status = 130
        if var:
            self.shell.user_ns[var] = {"status": status, "stdout": "".join(out), "stderr": "".join(err)}
        if status != 0:
            print(f"[exit status {status}]", file=sys.stderr, flush=True)
        return None

    def _transfer(self, direction: str, line: str, magic: Any) -> View:
        args = parse_line(magic, line)
        from pai_magic.core.ssh.tasks import download_from_task, parse_remote, parse_task, upload_to_task

        parse_task(args.task)
        spec = args.remote
        name, remote = parse_remote(spec)
        key, secret = self._key(None, args.passphrase)
        client = get_session(self.shell).client()
        what = f"{args.local} -> {spec}" if direction == "upload" else f"{spec} -> {args.local}"
        bar = _TransferBar(direction, what)
        cancel = threading.Event()
        ok = False
        try:
            if direction == "upload":
                result = upload_to_task(client, name, args.local, remote, task=args.task, on_progress=bar,
                                        verify=not args.no_verify, cancel=cancel, key=key, passphrase=secret)
            else:
                result = download_from_task(client, name, remote, args.local, task=args.task, on_progress=bar,
                                            verify=not args.no_verify, cancel=cancel, key=key, passphrase=secret)
            ok = True
        except KeyboardInterrupt:
            raise UsageError(f"%pai_{direction} interrupted: nothing was left under the final name.") from None
        finally:
            bar.finish(ok)
        lines = [result.summary()] + [f"  {f.source} -> {f.destination}" for f in result.files[:20]]
        if len(result.files) > 20:
            lines.append(f"  ... and {len(result.files) - 20} more")
        return View("\n".join(lines))

    @magic_arguments()
    @argument("local", help="local file or directory")
    @argument("remote", metavar="NAME:REMOTE", help="job and path in the task, e.g. train_3f2a:/data/in")
    @argument("--task", help="ROLE/INDEX (default: the first role's task 0)")
    @argument("--no-verify", action="store_true", help="check sizes only, not sha256")
    @argument("--passphrase", action="store_true", help="the key has a passphrase: ask for it (getpass)")
    @line_magic
    @friendly
    def pai_upload(self, line: str) -> View:
        """Copy a file or directory into a job's task (SFTP, verified, renamed into place when complete).

        Example: ``%pai_upload ./data train_3f2a:/workspace``
        """
        return self._transfer("upload", line, self.pai_upload)

    @magic_arguments()
    @argument("remote", metavar="NAME:REMOTE", help="job and path in the task, e.g. train_3f2a:out/model.pt")
    @argument("local", help="local file or directory")
    @argument("--task", help="ROLE/INDEX (default: the first role's task 0)")
    @argument("--no-verify", action="store_true", help="check sizes only, not sha256")
    @argument("--passphrase", action="store_true", help="the key has a passphrase: ask for it (getpass)")
    @line_magic
    @friendly
    def pai_download(self, line: str) -> View:
        """Copy a file or directory out of a job's task (SFTP, verified, renamed into place when complete).

        Example: ``%pai_download train_3f2a:out/model.pt ./models``
        """
        return self._transfer("download", line, self.pai_download)


@register_status_extra
def ssh_status_lines(session: Any, name: str, user: str, state: str) -> list[str] | None:
    """Under a job's live status: the SSH commands once it runs; its host keys forgotten at the end."""
    full = f"{user}~{name}"
    from pai_magic.core.models import is_terminal

    if is_terminal(state):
        from pai_magic.core.ssh.known_hosts import forget_job_keys

        forget_job_keys(full)
        return None
    if state != "RUNNING":
        return None
    from pai_magic.core.ssh.info import ssh_info

    info = ssh_info(session.client(), full)
    if not info.has_ssh:
        return None
    if not info.endpoints:
        return [f"SSH: {one_line(info.message or 'waiting for a task to run')}"]
    lines = [f"SSH {ep.task}: {ep.command}" for ep in info.endpoints]
    if info.key_path:
        lines = [f"SSH {ep.task}: {ep.command_with_key(info.key_path)}" for ep in info.endpoints]
    return lines
