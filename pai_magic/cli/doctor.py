"""``pai-magic doctor``: check the whole first-run setup (thin: :mod:`pai_magic.core.doctor`).

Exit code 0 when every check is ok (or has nothing to check), 1 when one needs fixing; each
line says what to do next. ``--json`` prints the checks as a list.
"""
from __future__ import annotations

import argparse

from pai_magic.cli.common import emit, profile_name


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    d = subparsers.add_parser(
        "doctor", help="check the setup: profile, cluster, token, SSH key, mounts, registry, kernelspecs",
        description="Check the whole first-run setup; each line says ok or what to do next. Reads only: "
                    "nothing is changed.")
    d.add_argument("--registry", metavar="URL",
                   help="registry to check instead of the profile's, scheme explicit (http://host:5000)")
    d.add_argument("--daemon-json", metavar="PATH", default=None,
                   help="Docker daemon config to check (default /etc/docker/daemon.json)")
    d.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from pai_magic.core.doctor import doctor_dicts, doctor_ok, doctor_text, run_doctor as doctor

    name = profile_name(args)
    if name is not None:  # typed --profile: an unknown one is bad input (exit 2, one line), as in %pai_doctor
        from pai_magic.core.profiles import require_profile

        require_profile(name)
    checks = doctor(name, registry=args.registry, daemon_json=args.daemon_json)
    emit(args, doctor_dicts(checks), lambda: doctor_text(checks))
    return 0 if doctor_ok(checks) else 1
