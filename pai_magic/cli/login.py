"""``pai-magic login``, ``logout``, ``whoami`` and ``profiles``: getting (and ending) a token and
choosing a cluster."""
from __future__ import annotations

import argparse

from pai_magic.cli.common import client_for, emit, read_secret, table
from pai_magic.core.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = subparsers.add_parser(
        "login", help="log in to a cluster and save its profile",
        description="Log in with a password (used once; only the token is kept) or a pasted token. "
                    "Secrets come from stdin or an environment variable, never from the command line.")
    p.add_argument("url", nargs="?", help="cluster URL, e.g. http://10.0.0.1 (default: the profile's)")
    p.add_argument("--user", "-u", help="user name (for a password login)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    src.add_argument("--password-env", metavar="VAR", help="read the password from environment variable VAR")
    src.add_argument("--token-stdin", action="store_true",
                     help="read a token (application token, or from an OIDC portal) from stdin")
    src.add_argument("--token-env", metavar="VAR", help="read the token from environment variable VAR")
    p.add_argument("--profile", metavar="NAME", default=None,
                   help="save as this profile (default: named after the cluster host)")
    p.add_argument("--vc", help="default virtual cluster for this profile")
    p.add_argument("--registry", metavar="URL", help="Docker registry, scheme explicit (http://host:5000)")
    p.add_argument("--no-activate", action="store_true", help="save the profile without making it active")
    p.set_defaults(func=run_login)

    lo = subparsers.add_parser(
        "logout", help="log out: revoke the token on the cluster (password logins) and forget it here",
        description="Forget the profile's token here. A token from a password login is also revoked on the "
                    "cluster; a pasted token (application token) may be shared with scripts, so it stays valid "
                    "there unless --revoke is given. A cluster that is down never stops the local part.")
    lo.add_argument("--revoke", action="store_true",
                    help="also revoke a pasted token on the cluster (scripts using it stop working)")
    lo.set_defaults(func=run_logout)

    w = subparsers.add_parser("whoami", help="check the token of the profile with the cluster")
    w.set_defaults(func=run_whoami)

    pr = subparsers.add_parser("profiles", help="list, select or remove cluster profiles")
    pr.add_argument("action", nargs="?", choices=("list", "use", "remove", "show"), default="list")
    pr.add_argument("name", nargs="?", help="profile name (for use / remove / show)")
    pr.set_defaults(func=run_profiles)


def run_login(args: argparse.Namespace) -> int:
    from pai_magic.core.auth import login_with_password, login_with_token
    from pai_magic.core.errors import AuthError
    from pai_magic.core.profiles import load_profile

    url, user = args.url, args.user
    if not url:
        try:
            current = load_profile(args.profile)
        except AuthError:
            raise InvalidInputError("Which cluster? Give its URL: `pai-magic login http://HOST --user NAME "
                                    "--password-stdin`.") from None
        url, user = current.url, user or current.user
        args.profile = args.profile or (None if current.name == "env" else current.name)
    token = read_secret(from_stdin=args.token_stdin, env_var=args.token_env, what="token")
    password = None if token else read_secret(from_stdin=args.password_stdin, env_var=args.password_env,
                                              what="password")
    common = dict(profile_name=args.profile, virtual_cluster=args.vc, registry_url=args.registry,
                  activate=not args.no_activate)
    if token:
        prof, status = login_with_token(url, token, user=user, **common)
        how = "application token" if status.application else "token"
    elif password:
        if not user:
            raise InvalidInputError("A password login needs --user NAME.")
        prof = login_with_password(url, user, password, **common)
        how = "password"
    else:
        raise InvalidInputError("Give the password with --password-stdin or --password-env VAR, or a token "
                                "with --token-stdin / --token-env VAR (nothing is ever prompted).")
    active = "" if args.no_activate else ", active"
    emit(args, {"profile": prof.public_dict(), "method": how, "active": not args.no_activate},
         f"Logged in to {prof.url} as {prof.user} with a {how} (profile {prof.name!r}{active}).")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from pai_magic.cli.common import profile_name
    from pai_magic.core.auth import logout

    result = logout(profile_name(args), revoke=args.revoke)
    emit(args, result.to_dict(), result.message)
    return 0


def run_whoami(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        info = client.info()
        status = client.check_token()
    data = {"profile": client.profile.name, "url": client.profile.url, "user": status.user,
            "application": status.application, "expires_at": status.expires_at,
            "cluster": {"name": info.name, "version": info.version, "authn_method": info.authn_method}}
    kind = "application token" if status.application else "token"
    emit(args, data, f"{status.user} on {client.profile.url} ({info.version}, {info.authn_method} login): "
                     f"{kind} accepted (profile {client.profile.name!r}).")
    return 0


def run_profiles(args: argparse.Namespace) -> int:
    from pai_magic.core import profiles as P

    if args.action in ("use", "remove", "show") and not args.name:
        raise InvalidInputError(f"`pai-magic profiles {args.action}` needs a profile NAME.")
    if args.action == "use":
        prof = P.select_profile(args.name)
        emit(args, prof.public_dict(), f"Active profile: {prof.name} ({prof.url} as {prof.user}).")
        return 0
    if args.action == "remove":
        P.remove_profile(args.name)
        emit(args, {"removed": args.name, "active": P.active_profile_name()}, f"Removed profile {args.name}.")
        return 0
    if args.action == "show":
        prof = P.load_profile(args.name)
        data = prof.public_dict()
        emit(args, data, "\n".join(f"{k}: {'' if v is None else v}" for k, v in data.items()))
        return 0
    profs = P.list_profiles()
    active = P.active_profile_name()
    env = P.profile_from_env()
    data = {"active": active, "profiles": [p.public_dict() for p in profs],
            "env": env.public_dict() if env else None}

    def text() -> str:
        if not profs and env is None:
            return P.NO_PROFILE_HINT
        rows = [("*" if p.name == active else "", p.name, p.url, p.user, p.virtual_cluster,
                 p.registry_url or "-") for p in profs]
        out = table(rows, ("", "PROFILE", "URL", "USER", "VC", "REGISTRY")) if rows else "(no saved profiles)"
        if env is not None:
            out += f"\nPAI_URL is set: {env.url} as {env.user or '?'} (used when no profile is named)"
        return out

    emit(args, data, text)
    return 0
