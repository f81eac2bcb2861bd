"""``%pai_doctor``: the whole first-run setup checked, one line per check (thin: the checks
are :mod:`pai_magic.core.doctor`, shared with ``pai-magic doctor``)."""
from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument

from pai_magic.magics.args import lazy_magic_arguments, parse_line
from pai_magic.magics.errors import friendly
from pai_magic.magics.messages import _cli_to_magic
from pai_magic.magics.render import View, esc
from pai_magic.magics.session import get_session

_COLOURS = {"ok": "#1a7f37", "FIX": "#cf222e", "-": "#6e7781"}


def doctor_view(checks: list[Any]) -> View:
    """Text and an HTML table of the checks, CLI verbs named as magics."""
    from pai_magic.core.doctor import doctor_text

    for check in checks:
        check.message = _cli_to_magic(check.message)
    rows = []
    for check in checks:
        mark = "-" if check.skipped else "ok" if check.ok else "FIX"
        snippet = (f"<div>{esc(check.hint)}</div><pre>{esc(check.snippet)}</pre>" if check.snippet else "")
        rows.append(f"<tr><td style='color:{_COLOURS[mark]};font-weight:600;padding-right:1em'>{mark}</td>"
                    f"<td style='text-align:left;padding-right:1em'>{esc(check.name)}</td>"
                    f"<td style='text-align:left'>{esc(check.message)}{snippet}</td></tr>")
    return View(doctor_text(checks), "<div style='font-weight:600'>pai_magic doctor</div><table>"
                + "".join(rows) + "</table>")


@magics_class
class DoctorMagics(Magics):
    """Check the setup from the notebook."""

    shell: Any  # the InteractiveShell: set by IPython when the class is registered

    @lazy_magic_arguments()
    @argument("--profile", metavar="NAME", help="profile to check instead of the current one, e.g. --profile lab")
    @argument("--registry", metavar="URL", help="registry to check instead of the profile's, e.g. http://10.0.0.5:5000")
    @argument("--daemon-json", metavar="PATH", help="Docker daemon config to check (default /etc/docker/daemon.json)")
    @line_magic
    @friendly
    def pai_doctor(self, line: str = "") -> View:
        """Check the whole setup (profile, cluster, token, SSH key, mounts, registry, kernelspecs).

        Each line says ok or what to do next; nothing is changed. Example: ``%pai_doctor`` or
        ``%pai_doctor --profile lab``
        """
        from pai_magic.core.doctor import run_doctor

        args = parse_line(self.pai_doctor, line)
        profile = get_session(self.shell).wanted_profile_name()
        if args.profile is not None:  # a typed name that does not exist: one line, not a report
            from pai_magic.core.profiles import require_profile

            profile = require_profile(args.profile).name
        return doctor_view(run_doctor(profile, registry=args.registry, daemon_json=args.daemon_json))
