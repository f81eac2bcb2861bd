"""``doctor`` (registry part): can Docker on this machine pull from a plain-HTTP registry?

Docker refuses plain HTTP unless the registry is listed in ``insecure-registries`` of
``/etc/docker/daemon.json`` (entries are ``host:port`` or CIDR ranges; 127.0.0.0/8 is always
allowed). The manual's way is to edit that file by hand; this check says whether it is done
and, if not, prints the exact JSON to write (the existing file merged) and the restart hint.
It only reads files: changing a daemon's config stays a person's decision.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pai_magic.core.errors import InvalidInputError

DAEMON_JSON = Path("/etc/docker/daemon.json")
RESTART_HINT = "then restart Docker: sudo systemctl restart docker (Docker Desktop: Settings > Docker Engine)"


@dataclass
class DoctorCheck:
    """One finding: ``ok`` or not, a one-line message, and what to do (JSON snippet, hint).
    ``skipped``: nothing to check (not set up, or an earlier check failed); it counts as ok."""

    name: str
    ok: bool
    message: str
    snippet: str | None = None
    hint: str | None = None
    details: list[str] = field(default_factory=list)
    skipped: bool = False


def _listed(entries: list[str], host: str) -> bool:
    hostname = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") else host[1:host.index("]")]
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    for entry in entries:
        value = str(entry).strip()
        if "://" in value:
            value = urlsplit(value).netloc
        if value.rstrip("/").lower() == host.lower():
            return True
        if address is not None and "/" in value:
            try:
                if address in ipaddress.ip_network(value, strict=False):
                    return True
            except ValueError:
                continue
    return False


def check_insecure_registry(registry_url: str, daemon_json: Path | str | None = None) -> DoctorCheck:
    """Whether Docker's daemon.json lets this machine pull from ``registry_url`` over plain HTTP."""
    parts = urlsplit((registry_url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(f"Registry {registry_url!r} needs an explicit scheme: http://HOST:PORT or https://HOST.")
    host = parts.netloc
    name = "docker insecure-registries"
    if parts.scheme == "https":
        return DoctorCheck(name, True, f"{host} uses HTTPS: Docker needs no insecure-registries entry.")
    hostname = parts.hostname or ""
    try:
        if ipaddress.ip_address(hostname).is_loopback:
            return DoctorCheck(name, True, f"{host} is a loopback address: Docker always allows plain HTTP there.")
    except ValueError:
        pass
    path = Path(daemon_json) if daemon_json else DAEMON_JSON
    config: dict = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as exc:
            return DoctorCheck(name, False, f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): "
                               "Docker will not start with it; fix it first.")
        except OSError as exc:
            return DoctorCheck(name, False, f"Cannot read {path} ({exc.strerror}): run the check as a user "
                               "who can read it.")
        if not isinstance(loaded, dict):
            return DoctorCheck(name, False, f"{path} must hold a JSON object: fix it first.")
        config = loaded
    entries = config.get("insecure-registries") or []
    if not isinstance(entries, list):
        entries = []
    if _listed([str(e) for e in entries], host):
        return DoctorCheck(name, True, f"{path} lists {host} in insecure-registries: Docker can pull over plain HTTP.")
    merged = dict(config)
    merged["insecure-registries"] = [str(e) for e in entries] + [host]
    snippet = json.dumps(merged, indent=2)
    where = f"{path} does not list {host}" if path.exists() else f"{path} does not exist"
    return DoctorCheck(name, False,
                       f"{where}: Docker refuses plain-HTTP registries outside insecure-registries.",
                       snippet=snippet, hint=f"write this to {path}, {RESTART_HINT}.")
