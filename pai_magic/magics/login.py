"""Who am I, where: ``%pai_login``, ``%pai_logout``, ``%pai_profile``, ``%pai_local``.

The password (or a pasted token) is read with ``getpass`` and never taken as an argument,
so it never lands in the notebook, its history or its outputs; only the token is kept, in
the 0600 profile file the core writes.
"""
from __future__ import annotations

import getpass
import os
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument

from pai_magic.magics.args import lazy_magic_arguments, parse_line
from pai_magic.magics.errors import friendly, usage_errors
from pai_magic.magics.render import Table, View, kv_view
from pai_magic.magics.session import get_session


def ask_secret(prompt: str) -> str:
    """``getpass``, with every way a front end can fail to ask turned into a UsageError."""
    try:
        value = getpass.getpass(prompt)
    except StdinNotImplementedError:
        raise UsageError("This front end cannot ask for a password: run %pai_login in Jupyter or terminal "
                         "IPython, or set PAI_URL, PAI_USER and PAI_TOKEN.") from None
    except (EOFError, KeyboardInterrupt):
        raise UsageError("Login cancelled: nothing was changed.") from None
    return (value or "").strip()


def whoami_view(profile: Any, info: Any = None, note: str | None = None) -> View:
    """Who is logged in where (never the token)."""
    cluster = None
    if info is not None:
        cluster = f"{info.name or 'OpenPAI'} {info.version}".strip()
    return kv_view(
        f"Logged in as {profile.user} at {profile.url}",
        [("profile", profile.name), ("cluster", cluster), ("virtual cluster", profile.virtual_cluster),
         ("registry", profile.registry_url), ("note", note)])


@magics_class
class LoginMagics(Magics):
    """Logging in and choosing the cluster."""

    @lazy_magic_arguments()
    @argument("url", nargs="?", help="cluster URL, e.g. http://10.0.0.1 (default: the current profile's)")
    @argument("--user", help="user name (default: the profile's, else your login name), e.g. --user alice")
    @argument("--token", action="store_true", help="paste a token (OIDC clusters, application tokens) instead of a password")
    @argument("--profile", help="save as this profile name, e.g. --profile lab")
    @line_magic
    @friendly
    def pai_login(self, line: str) -> View:
        """Log in to an OpenPAI cluster; the password or token is asked with getpass, never typed on the line.

        Example: ``%pai_login http://10.0.0.1 --user alice`` or ``%pai_login http://10.0.0.1 --token``
        """
        args = parse_line(self.pai_login, line)
        import re

        from pai_magic.core.profiles import check_profile_name

        if args.profile is not None:
            check_profile_name(args.profile)
        if args.user is not None and not re.match(r"^[A-Za-z0-9_.@-]+$", args.user):
            raise UsageError(f"--user {args.user!r} is not a user name: e.g. --user alice.")
        session = get_session(self.shell)
        from pai_magic.core.auth import detect_cluster, login_with_password, login_with_token
        from pai_magic.core.profiles import normalize_url

        current = None
        try:
            current = session.profile()
        except Exception:  # noqa: BLE001 - no profile yet is the usual first login
            current = None
        url = args.url or (current.url if current is not None else None)
        if not url:
            raise UsageError("Give the cluster URL: %pai_login http://HOST[:PORT] (or %pai_local for a local one).")
        with usage_errors(url=url):
            url = _checked_url(url, normalize_url)
            info = detect_cluster(url)
        profile_name = args.profile
        if profile_name is None and current is not None and current.url == url and current.name != "env":
            profile_name = current.name
        user = args.user or (current.user if current is not None and current.url == url else None)
        note = None
        with usage_errors(url=url):
            if args.token or not info.has_basic_login:
                if not args.token:
                    note = "this cluster has no password login (OIDC): used a pasted token"
                token = ask_secret(f"Paste your OpenPAI token for {url} (Profile -> tokens in the web portal): ")
                if not token:
                    raise UsageError("No token pasted: nothing was changed.")
                if not token.isascii() or not token.isprintable() or " " in token:
                    raise UsageError("That is not a token (tokens are one word of plain ASCII characters): "
                                     "copy it again from the web portal (Profile -> tokens).")
                profile, _status = login_with_token(url, token, user=user, profile_name=profile_name)
            else:
                user = user or _login_name()
                password = ask_secret(f"Password for {user} at {url}: ")
                if not password:
                    raise UsageError("No password given: nothing was changed.")
                profile = login_with_password(url, user, password, profile_name=profile_name)
                del password
        session.profile_name = profile.name
        session.forget_client()
        return whoami_view(profile, info, note)

    @lazy_magic_arguments()
    @argument("--profile", help="log out of this profile, e.g. --profile lab (default: the current one)")
    @argument("--revoke", action="store_true",
              help="also revoke a pasted token on the cluster (scripts using it stop working)")
    @line_magic
    @friendly
    def pai_logout(self, line: str) -> View:
        """Log out: a password login's token is revoked on the cluster, a pasted one only forgotten (unless --revoke).

        The token is forgotten here even when the cluster is down; the output says what happened
        there. Example: ``%pai_logout`` or ``%pai_logout --profile lab --revoke``
        """
        args = parse_line(self.pai_logout, line)
        from pai_magic.core.auth import logout
        from pai_magic.core.profiles import check_profile_name

        if args.profile is not None:
            check_profile_name(args.profile)

        session = get_session(self.shell)
        result = logout(args.profile or session.wanted_profile_name(), revoke=args.revoke)
        session.forget_client()
        return View(result.message)

    @lazy_magic_arguments()
    @argument("name", nargs="?", help="profile to use from now on, e.g. lab (default: list the profiles)")
    @line_magic
    @friendly
    def pai_profile(self, line: str) -> Any:
        """List the cluster profiles, or switch to one. Example: ``%pai_profile lab``"""
        args = parse_line(self.pai_profile, line)
        from pai_magic.core.profiles import active_profile_name, list_profiles, select_profile

        session = get_session(self.shell)
        if args.name:
            from pai_magic.core.profiles import check_profile_name

            check_profile_name(args.name)
            profile = select_profile(args.name)
            session.profile_name = profile.name
            session.forget_client()
            return kv_view(f"Using profile {profile.name}: {profile.user or '?'} at {profile.url}",
                           [("virtual cluster", profile.virtual_cluster), ("registry", profile.registry_url),
                            ("token", "set" if profile.token else "none: run %pai_login")])
        current = session.wanted_profile_name() or active_profile_name()
        table = Table(["", "profile", "url", "user", "virtual cluster", "token"],
                      empty="No profiles yet: run %pai_login URL or %pai_local.")
        for prof in list_profiles():
            table.rows.append(["*" if prof.name == current else "", prof.name, prof.url, prof.user or "-",
                               prof.virtual_cluster, "set" if prof.token else "-"])
        if os.environ.get("PAI_URL"):
            table.footer = "PAI_URL is set: the environment's cluster is used when no profile is chosen."
        return table

    @lazy_magic_arguments()
    @argument("--data-dir", help="where the local backend keeps jobs and storages (default: pai_magic's data dir)")
    @argument("--port", type=int, default=0, help="port to listen on (default: any free port), e.g. --port 8080")
    @line_magic
    @friendly
    def pai_local(self, line: str) -> View:
        """Start the embedded OpenPAI backend in the background (or find the running one) and log in to it.

        Jobs then run as local processes. Example: ``%pai_local``
        """
        args = parse_line(self.pai_local, line)
        if not 0 <= args.port <= 65535:
            raise UsageError("--port must be between 0 and 65535 (0: any free port).")
        session = get_session(self.shell)
        from pai_magic.magics.local_login import connect_local

        profile, info, started = connect_local(session, data_dir=args.data_dir, port=args.port)
        session.profile_name = profile.name
        session.forget_client()
        note = "started in this kernel" if started else "already running"
        return whoami_view(profile, info, f"local backend {note}; jobs run as local processes")


def _checked_url(raw: str, normalize: Any) -> str:
    """The canonical cluster URL, or a UsageError: ``http://host:abc``, ``http://::`` or
    ``http://[::1`` would otherwise fail deep in urllib with a bare ValueError."""
    from urllib.parse import urlsplit

    try:
        url = normalize(raw)
        parts = urlsplit(url)
        ok = bool(parts.hostname) and parts.port != 0  # .port raises ValueError when not a number
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"{raw!r} is not a cluster URL: give it as http://HOST[:PORT] with a port from 1 to 65535.")
    return url


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "pai"
