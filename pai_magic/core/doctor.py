"""``pai-magic doctor`` / ``%pai_doctor``: the whole first-run setup, one line per check.

A researcher's first hour fails in a handful of places: no profile, a wrong cluster URL, an
expired token, an SSH key missing from the OpenPAI profile (jobs then refuse SSH), no NFS
client or no password-less sudo for kernel mounts, Docker refusing the lab's plain-HTTP
registry, a remote-kernel kernelspec naming a profile that does not exist. Each check says
"ok" or what to do next. Doctor only reads: it changes nothing, prompts for nothing, and
every network call has the client's timeout. The faces print :func:`doctor_text` or
:func:`doctor_dicts` and exit/raise on :func:`doctor_ok`.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pai_magic.core.errors import PaiError, PaiTimeoutError, one_line
from pai_magic.core.registry.doctor import DoctorCheck, check_insecure_registry

if TYPE_CHECKING:
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import Profile

#: A token that expires sooner than this is reported: a job started now may outlive it.
TOKEN_WARN_DAYS = 2.0
#: ``metadata.kernel_provisioner.provisioner_name`` of a remote-kernel kernelspec.
PROVISIONER_NAME = "pai-magic"
PROVISIONER_GROUP = "jupyter_client.kernel_provisioners"
#: The OpenPAI major version whose REST API pai_magic speaks.
SUPPORTED_MAJOR = 1

__all__ = ["DoctorCheck", "run_doctor", "doctor_text", "doctor_dicts", "doctor_ok", "check_profile",
           "check_cluster", "check_token", "check_ssh_key", "check_mounts", "check_registry",
           "check_kernelspecs"]


def _msg(exc: BaseException) -> str:
    return one_line(str(exc)).rstrip(".")


def _skip(name: str, message: str) -> DoctorCheck:
    return DoctorCheck(name, True, message, skipped=True)


# -- the cluster ---------------------------------------------------------------------------

def check_profile(profile_name: str | None = None) -> tuple[Profile | None, DoctorCheck]:
    """Which profile the faces would use (``--profile``, ``PAI_PROFILE``, ``PAI_URL``, the active one)."""
    from pai_magic.core.profiles import ENV_PROFILE_NAME, load_profile, profile_path

    try:
        profile = load_profile(profile_name)
    except PaiError as exc:
        return None, DoctorCheck("profile", False, one_line(str(exc)))
    where = "from PAI_URL / PAI_TOKEN" if profile.name == ENV_PROFILE_NAME else f"in {profile_path()}"
    return profile, DoctorCheck("profile", True, f"profile {profile.name!r} {where}: cluster {profile.url}, "
                                                 f"user {profile.user or '(none yet)'}.")


def check_cluster(client: PaiClient) -> DoctorCheck:
    """The cluster answers ``/info`` as OpenPAI, in a version whose API pai_magic speaks."""
    from pai_magic.core.client import parse_version

    url = client.profile.url
    try:
        info = client.info(refresh=True)
    except PaiError as exc:
        return DoctorCheck("cluster", False, f"{url} does not answer as an OpenPAI cluster: {_msg(exc)}.")
    version = parse_version(info.version)
    login = "basic (password) login" if info.has_basic_login else f"{info.authn_method or 'unknown'} login: paste a token"
    if version is None:
        return DoctorCheck("cluster", True, f"{url} answers as OpenPAI but does not tell its version ({login}).")
    if version[0] != SUPPORTED_MAJOR:
        return DoctorCheck("cluster", False, f"{url} runs OpenPAI {info.version}: pai_magic speaks the v1.x REST "
                                             "API; use a v1.x cluster or expect some calls to fail.")
    return DoctorCheck("cluster", True, f"{url} answers: OpenPAI {info.version}, {login}.")


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"


def check_token(client: PaiClient, *, warn_days: float = TOKEN_WARN_DAYS, now: float | None = None) -> DoctorCheck:
    """The cluster accepts the profile's token, and for how long it still will."""
    return _token(client, warn_days, now)[0]


def _token(client: PaiClient, warn_days: float, now: float | None) -> tuple[DoctorCheck, bool]:
    """The check, and whether the cluster accepts the token right now (an expiring one still works)."""
    profile = client.profile
    relogin = f"`pai-magic login {profile.url} --profile {profile.name}`"
    if not profile.token:
        return DoctorCheck("token", False, f"Profile {profile.name!r} has no token: log in with {relogin}."), False
    try:
        status = client.check_token()
    except PaiError as exc:
        return DoctorCheck("token", False, f"The cluster refused the token ({_msg(exc)}): log in again with "
                                           f"{relogin}."), False
    who = status.user or profile.user or "?"
    kind = "application token" if status.application else "token"
    if status.expires_at is None:
        return DoctorCheck("token", True, f"The {kind} of {who} is valid and does not expire."), True
    left = status.expires_at - (time.time() if now is None else now)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(status.expires_at))
    if left < warn_days * 86400:
        return DoctorCheck("token", False, f"The {kind} of {who} expires in {_span(left)} ({when}): a job started "
                                           f"now may outlive it; log in again with {relogin}."), True
    return DoctorCheck("token", True, f"The {kind} of {who} is valid for {_span(left)} more (until {when})."), True


def check_ssh_key(profile: Profile | None, client: PaiClient | None) -> DoctorCheck:
    """An SSH key exists (the profile's, ~/.ssh's or pai_magic's own) and the OpenPAI profile
    holds its public half, which the cluster copies into every job started with SSH.
    ``client`` None: the cluster cannot be asked (no profile, or the token failed)."""
    from pai_magic.core.ssh.keys import find_key
    from pai_magic.core.ssh.tasks import profile_entry

    add = "`pai-magic ssh-key --add`"
    try:
        key = find_key(profile.ssh_key if profile is not None else None)
    except PaiError as exc:
        return DoctorCheck("ssh key", False, one_line(str(exc)))
    if key is None:
        return DoctorCheck("ssh key", False, f"No SSH key yet: run {add} (creates one and adds it to your "
                                             "OpenPAI profile, so jobs started with --ssh accept it).")
    which = f"{key.private_path} ({key.fingerprint})"
    if client is None:
        return _skip("ssh key", f"SSH key {which} exists; whether your OpenPAI profile has it is checked once "
                                "the cluster accepts your token.")
    try:
        entry = profile_entry(client.ssh_keys(), key)
    except PaiError as exc:
        return DoctorCheck("ssh key", False, f"Cannot read the SSH keys of your OpenPAI profile ({_msg(exc)}).")
    if entry is None:
        return DoctorCheck("ssh key", False, f"SSH key {which} is not in your OpenPAI profile, so jobs will not "
                                             f"accept it: run {add}.")
    return DoctorCheck("ssh key", True, f"SSH key {which} is in your OpenPAI profile as {entry.get('title')!r}.")


# -- this machine --------------------------------------------------------------------------

def _kernel_fix(reason: str) -> str:
    from pai_magic.core.storage.nfs import install_hint

    if "mount.nfs" in reason:
        return install_hint()
    if "password" in reason:
        return "allow password-less sudo for mount and umount (a sudoers rule), or run as root"
    if "sudo" in reason:
        return "install sudo with a password-less rule for mount and umount, or run as root"
    if "kernel" in reason:
        return "load the NFS module: sudo modprobe nfs"
    return "see `pai-magic mount --help`"


def check_mounts() -> DoctorCheck:
    """Kernel NFS mounts (the NFS client and root or ``sudo -n``), else the rootless path
    (sshfs + FUSE through a job); at least one must work to mount a cluster storage here."""
    from pai_magic.core.storage.nfs import kernel_nfs_possible
    from pai_magic.core.storage.rootless import fuse_available

    kernel_ok, reason = kernel_nfs_possible()
    if kernel_ok:
        return DoctorCheck("mounts", True, f"Kernel NFS mounts work here ({reason}): "
                                           "`pai-magic mount --storage NAME MOUNTPOINT`.")
    missing = [what for what, ok in (("sshfs", shutil.which("sshfs") is not None),
                                     ("FUSE (/dev/fuse and fusermount)", fuse_available())) if not ok]
    if not missing:
        return DoctorCheck("mounts", True, f"Kernel NFS mounts are not possible here ({reason}); storages mount "
                                           "without root through a job instead: `pai-magic mount --storage NAME "
                                           f"MOUNTPOINT --rootless` (for kernel mounts: {_kernel_fix(reason)}).")
    return DoctorCheck("mounts", False, f"No way to mount a storage here: kernel NFS fails ({reason}: "
                                        f"{_kernel_fix(reason)}) and the rootless path lacks "
                                        f"{' and '.join(missing)} (install sshfs and fuse3).")


def check_registry(profile: Profile | None, registry: str | None = None,
                   daemon_json: Path | str | None = None) -> list[DoctorCheck]:
    """The Docker registry (``registry``, the profile's, or ``PAI_REGISTRY``): it answers and
    accepts the credentials, and Docker on this machine may pull from it (insecure-registries)."""
    from pai_magic.core.registry import open_registry

    configured = registry or (profile.registry_url if profile is not None else None) or \
        os.environ.get("PAI_REGISTRY", "").strip()
    if not configured:
        return [_skip("registry", "No Docker registry configured (only needed for your own images): add one "
                                  "with `pai-magic login URL --registry http://HOST:PORT` or PAI_REGISTRY.")]
    from pai_magic.core.deadline import request_timeout

    # the registry's own read timeout (60 s) suits blob transfers, not a check: a hung registry
    # would hold the doctor for a minute whatever --request-timeout said
    seconds = request_timeout()
    try:
        client = open_registry(registry, profile, workers=1, timeout=(min(5.0, seconds), seconds))
    except PaiError as exc:
        return [DoctorCheck("registry", False, one_line(str(exc)))]
    with client:
        try:
            client.ping()
            found = DoctorCheck("registry", True, f"{client.url} answers the registry API and accepts the credentials.")
        except PaiTimeoutError:
            found = DoctorCheck("registry", False, f"No answer from {client.url} within {seconds:g} s: the registry "
                                                   "is down or overloaded; try again later, or allow more time with "
                                                   "--request-timeout / PAI_MAGIC_REQUEST_TIMEOUT.")
        except PaiError as exc:
            found = DoctorCheck("registry", False, one_line(str(exc)))
        return [found, check_insecure_registry(client.url, daemon_json)]


# -- remote kernels ------------------------------------------------------------------------

def _kernel_dirs() -> list[Path]:
    from jupyter_core.paths import jupyter_path

    return [Path(p) for p in jupyter_path("kernels")]


def _pai_kernelspecs(dirs: Iterable[Path]) -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, kernel.json, provisioner config) of each kernelspec that uses our provisioner;
    a name found in several folders counts once, as Jupyter takes the first."""
    seen: set[str] = set()
    found = []
    for folder in dirs:
        for spec in sorted(Path(folder).glob("*/kernel.json")):
            name = spec.parent.name
            if name in seen:
                continue
            seen.add(name)
            try:
                data = json.loads(spec.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            prov = (data.get("metadata") or {}).get("kernel_provisioner") if isinstance(data, dict) else None
            if isinstance(prov, dict) and prov.get("provisioner_name") == PROVISIONER_NAME:
                config = prov.get("config")
                found.append((name, spec, config if isinstance(config, dict) else {}))
    return found


def _provisioner_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == PROVISIONER_NAME for ep in entry_points(group=PROVISIONER_GROUP))


def check_kernelspecs(dirs: Iterable[Path | str] | None = None) -> list[DoctorCheck]:
    """Installed kernelspecs that start a remote kernel in a job: each names a profile that
    exists, and the provisioner they name is installed in this environment."""
    from pai_magic.core.profiles import list_profiles

    specs = _pai_kernelspecs([Path(d) for d in dirs] if dirs is not None else _kernel_dirs())
    if not specs:
        return [_skip("kernelspecs", f"No kernelspec uses the {PROVISIONER_NAME} kernel provisioner "
                                     "(remote kernels in a job are optional).")]
    checks = []
    if not _provisioner_installed():
        checks.append(DoctorCheck("kernelspecs", False, f"{len(specs)} kernelspec(s) name the {PROVISIONER_NAME} "
                                                        "kernel provisioner, which is not installed in this "
                                                        "environment: pip install pai_magic here."))
    try:
        profiles = {p.name for p in list_profiles()}
    except PaiError:
        profiles = set()
    for name, spec, config in specs:
        wanted = config.get("profile")
        label = f"kernelspec {name}"
        if not wanted:
            checks.append(DoctorCheck(label, False, f"{spec} names no profile (metadata.kernel_provisioner.config"
                                                    ".profile): install the kernelspec again with a profile."))
        elif str(wanted) not in profiles:
            checks.append(DoctorCheck(label, False, f"{spec} names profile {wanted!r}, which does not exist: log in "
                                                    f"with `pai-magic login URL --profile {wanted}`."))
        else:
            checks.append(DoctorCheck(label, True, f"{spec} starts a remote kernel with profile {wanted!r}."))
    return checks


# -- all of it -----------------------------------------------------------------------------

def run_doctor(profile_name: str | None = None, *, registry: str | None = None,
               daemon_json: Path | str | None = None, kernel_dirs: Iterable[Path | str] | None = None,
               token_warn_days: float = TOKEN_WARN_DAYS) -> list[DoctorCheck]:
    """Every check, in the order a first run meets them; later cluster checks are skipped
    when an earlier one fails (a wrong URL would otherwise fail them all with one cause)."""
    from pai_magic.core.client import PaiClient

    profile, found = check_profile(profile_name)
    checks = [found]
    client = PaiClient(profile) if profile is not None else None
    try:
        trusted: PaiClient | None = None
        if client is None:
            checks.append(_skip("cluster", "Not checked: no profile."))
            checks.append(_skip("token", "Not checked: no profile."))
        else:
            cluster = check_cluster(client)
            checks.append(cluster)
            if cluster.ok:
                token, accepted = _token(client, token_warn_days, None)
                checks.append(token)
                if accepted:  # the profile's SSH keys can be read with it
                    trusted = client
            else:
                checks.append(_skip("token", "Not checked: the cluster does not answer."))
        checks.append(check_ssh_key(profile, trusted))
    finally:
        if client is not None:
            client.close()
    checks.append(check_mounts())
    checks.extend(check_registry(profile, registry, daemon_json))
    checks.extend(check_kernelspecs(kernel_dirs))
    return checks


def doctor_ok(checks: Iterable[DoctorCheck]) -> bool:
    return all(c.ok for c in checks)


def doctor_dicts(checks: Iterable[DoctorCheck]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def doctor_text(checks: Iterable[DoctorCheck]) -> str:
    """``ok``, ``FIX`` or ``-`` (nothing to check), the check's name and its one line; a
    snippet to write (Docker's daemon.json) follows indented."""
    lines = []
    for check in checks:
        mark = "-  " if check.skipped else "ok " if check.ok else "FIX"
        lines.append(f"{mark}  {check.name}: {check.message}")
        if check.snippet:
            lines.append(f"     {check.hint}")
            lines.extend("     " + line for line in check.snippet.splitlines())
    return "\n".join(lines)
