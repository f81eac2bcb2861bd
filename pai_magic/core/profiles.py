"""Cluster profiles: which OpenPAI cluster to talk to, as whom, with which defaults.

A profile comes from one of two places, so that scripts and notebooks need no file while a
person with several clusters keeps them all in ONE file:

- the environment: ``PAI_URL`` + ``PAI_USER`` + ``PAI_TOKEN`` (+ ``PAI_REGISTRY``, ``PAI_VC``);
- the profile file ``config_dir()/profiles.yaml`` (mode 0600, it holds tokens), which keeps
  several named clusters and remembers the active one.

Resolution order of :func:`load_profile`: an explicit name, then ``PAI_PROFILE``, then the
environment (``PAI_URL``), then the file's active profile. Secrets (token, registry password)
are excluded from ``repr`` and from :meth:`Profile.public_dict`, the only shape faces print.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import yaml

from pai_magic.core.errors import AuthError, InvalidInputError, NotFoundError
from pai_magic.core.paths import config_dir, ensure_private_dir, write_private

REST_PREFIX = "/rest-server/api/v2"
PROFILE_FILE = "profiles.yaml"
ENV_PROFILE_NAME = "env"
NO_PROFILE_HINT = ("No cluster profile: run `pai-magic login URL` or %pai_login URL (with no cluster: "
                   "`pai-magic local --write-profile` or %pai_local)")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SECRET_FIELDS = ("token", "registry_password")
#: How the profile's token was obtained (``Profile.token_source``); it decides what a logout
#: does on the cluster (see :func:`pai_magic.core.auth.logout`). Files written before this
#: field existed have none: such a token is treated like a pasted one (never revoked unasked).
TOKEN_FROM_PASSWORD = "password"  # a browser token from a basic login: this session's own
TOKEN_PASTED = "pasted"  # a token the person pasted (application token, OIDC portal): maybe shared


def normalize_url(url: str) -> str:
    """The cluster URL as people paste it, made canonical.

    Accepts ``10.0.0.1``, ``http://host/``, or a pasted REST base
    (``http://host/rest-server/api/v2``) and returns ``scheme://host[:port]`` plus any path
    prefix, without the REST suffix or a trailing slash, so ``rest_base`` is built one way.
    """
    raw = (url or "").strip()
    if not raw:
        raise InvalidInputError("The cluster URL is empty: give it as http://HOST[:PORT].")
    if "://" not in raw:
        raw = "http://" + raw
    bad = InvalidInputError(f"{url!r} is not a cluster URL: give it as http://HOST[:PORT] or https://HOST.")
    try:
        parts = urlsplit(raw)
        # .hostname and .port parse the netloc: a bad IPv6 literal or a non-numeric port
        # raises here, not later inside requests, where it would read as a crash.
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in parts.netloc):
            raise bad
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise bad from None
    path = parts.path.rstrip("/")
    for suffix in (REST_PREFIX, "/rest-server"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def normalize_registry_url(url: str | None) -> str | None:
    """A registry address with its scheme explicit (lab registries are often plain HTTP).

    A bare ``host:port`` is refused rather than guessed, because guessing the scheme is the
    silent fallback FACTS.md warns about.
    """
    if url is None or not str(url).strip():
        return None
    raw = str(url).strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(
            f"Registry {url!r} has no scheme: write http://{raw} (plain HTTP) or https://{raw}.")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Profile:
    """One cluster and how to reach it. ``token`` and ``registry_password`` never print."""

    name: str = "default"
    url: str = ""
    user: str = ""
    token: str = field(default="", repr=False)
    virtual_cluster: str = "default"
    registry_url: str | None = None
    registry_user: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    storage: str | None = None  # default storage to mount: "NAME" or "NAME:/mount/path"
    ssh_key: str | None = None  # path of the private key used for job SSH
    token_source: str | None = None  # TOKEN_FROM_PASSWORD, TOKEN_PASTED, or None (unknown, older files)

    def __post_init__(self) -> None:
        if self.url:
            self.url = normalize_url(self.url)
        self.registry_url = normalize_registry_url(self.registry_url)
        self.virtual_cluster = self.virtual_cluster or "default"

    @property
    def rest_base(self) -> str:
        """The REST API root every client call is joined onto."""
        return self.url + REST_PREFIX

    @property
    def has_token(self) -> bool:
        return bool(self.token)

    def public_dict(self) -> dict[str, Any]:
        """Everything a face may show: secrets replaced by whether they are set."""
        data = asdict(self)
        for key in _SECRET_FIELDS:
            data[key] = "******" if data.get(key) else None
        return data

    def to_file_dict(self) -> dict[str, Any]:
        """What the 0600 profile file stores (secrets included, empty values dropped)."""
        data = asdict(self)
        data.pop("name")
        return {k: v for k, v in data.items() if v not in (None, "")}

    @classmethod
    def from_file_dict(cls, name: str, data: dict[str, Any]) -> "Profile":
        known = {f.name for f in fields(cls)}
        clean = {k: v for k, v in (data or {}).items() if k in known and k != "name"}
        return cls(name=name, **clean)


def profile_path() -> Path:
    return config_dir() / PROFILE_FILE


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialize read-modify-write of the profile file between a kernel, the CLI and the server."""
    ensure_private_dir(config_dir())
    lock = config_dir() / ".profiles.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_store() -> dict[str, Any]:
    path = profile_path()
    if not path.exists():
        return {"active": None, "profiles": {}}
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)  # it holds tokens: never leave it readable by others
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"The profile file {path} is not valid YAML ({type(exc).__name__}): fix or delete it, "
            "then run `pai-magic login URL`.") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"The profile file {path} is not a mapping: fix or delete it.")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise InvalidInputError(f"The profile file {path} has no `profiles:` mapping: fix or delete it.")
    return {"active": data.get("active"), "profiles": profiles}


def _write_store(store: dict[str, Any]) -> None:
    text = yaml.safe_dump({"active": store.get("active"), "profiles": store.get("profiles") or {}},
                          sort_keys=True, default_flow_style=False)
    write_private(profile_path(), text)


def check_profile_name(name: str) -> str:
    """The one rule for a profile name (it is a key in the profile file and a kernelspec field)."""
    if not name or not _NAME_RE.match(name):
        raise InvalidInputError(f"Profile name {name!r} is not valid: use letters, digits, '.', '_' or '-', "
                                "e.g. lab.")
    return name


def require_profile(name: str) -> Profile:
    """The profile a person NAMED (``--profile NAME``): a valid name that exists, else one line.

    Why not let a check report it: a typo in a typed name is bad input, answered at once with
    the profiles that exist and how to make this one, not a report whose every check is skipped.
    """
    return load_profile(check_profile_name(name))


def profile_from_env() -> Profile | None:
    """The profile described by ``PAI_URL``/``PAI_USER``/``PAI_TOKEN``, if ``PAI_URL`` is set."""
    url = os.environ.get("PAI_URL", "").strip()
    if not url:
        return None
    return Profile(
        name=ENV_PROFILE_NAME,
        url=url,
        user=os.environ.get("PAI_USER", "").strip(),
        token=os.environ.get("PAI_TOKEN", "").strip(),
        virtual_cluster=os.environ.get("PAI_VC", "").strip() or "default",
        registry_url=os.environ.get("PAI_REGISTRY", "").strip() or None,
        registry_user=os.environ.get("PAI_REGISTRY_USER", "").strip() or None,
        registry_password=os.environ.get("PAI_REGISTRY_PASSWORD") or None,
        storage=os.environ.get("PAI_STORAGE", "").strip() or None,
    )


def list_profiles() -> list[Profile]:
    """Every profile in the file, in name order."""
    store = _read_store()
    return [Profile.from_file_dict(n, d) for n, d in sorted(store["profiles"].items())]


def active_profile_name() -> str | None:
    return _read_store().get("active")


def load_profile(name: str | None = None) -> Profile:
    """The profile to use now (see the module docstring for the order)."""
    wanted = name or os.environ.get("PAI_PROFILE", "").strip() or None
    if wanted is None:
        env = profile_from_env()
        if env is not None:
            return env
    store = _read_store()
    if wanted is None:
        wanted = store.get("active")
        if not wanted:
            raise AuthError(NO_PROFILE_HINT)
    data = store["profiles"].get(wanted)
    if data is None:
        known = ", ".join(sorted(store["profiles"])) or "none"
        raise NotFoundError(f"No profile named {wanted!r} (known: {known}): run `pai-magic login URL --profile {wanted}`.")
    return Profile.from_file_dict(wanted, data)


def save_profile(profile: Profile, *, activate: bool = True) -> Profile:
    """Add or replace ``profile`` in the file (0600); make it the active one unless told not to."""
    check_profile_name(profile.name)
    if not profile.url:
        raise InvalidInputError("A profile needs a cluster URL: run `pai-magic login URL`.")
    with _locked():
        store = _read_store()
        store["profiles"][profile.name] = profile.to_file_dict()
        if activate or not store.get("active"):
            store["active"] = profile.name
        _write_store(store)
    return profile


def select_profile(name: str) -> Profile:
    """Make ``name`` the active profile."""
    with _locked():
        store = _read_store()
        if name not in store["profiles"]:
            known = ", ".join(sorted(store["profiles"])) or "none"
            raise NotFoundError(f"No profile named {name!r} (known: {known}): run `pai-magic profiles` to list them.")
        store["active"] = name
        _write_store(store)
        return Profile.from_file_dict(name, store["profiles"][name])


def remove_profile(name: str) -> None:
    """Forget a profile (its token with it). Another one becomes active if it was the active one."""
    with _locked():
        store = _read_store()
        if name not in store["profiles"]:
            raise NotFoundError(f"No profile named {name!r}: run `pai-magic profiles` to list them.")
        del store["profiles"][name]
        if store.get("active") == name:
            store["active"] = next(iter(sorted(store["profiles"])), None)
        _write_store(store)


def update_profile(name: str, **changes: Any) -> Profile:
    """Change some fields of a stored profile (e.g. a fresh token after login)."""
    with _locked():
        store = _read_store()
        if name not in store["profiles"]:
            raise NotFoundError(f"No profile named {name!r}: run `pai-magic profiles` to list them.")
        current = Profile.from_file_dict(name, store["profiles"][name])
        known = {f.name for f in fields(Profile)} - {"name"}
        for key, value in changes.items():
            if key not in known:
                raise InvalidInputError(f"Profiles have no field {key!r}; fields: {', '.join(sorted(known))}.")
            setattr(current, key, value)
        current.__post_init__()
        store["profiles"][name] = current.to_file_dict()
        _write_store(store)
        return current


def forget_token(name: str, token: str) -> bool:
    """Drop the token of profile ``name`` if it is still ``token``; True when it was dropped.

    Compared under the file lock, so a logout never wipes the newer token of a login that
    ran (in another kernel, the CLI, the server) while the old one was being revoked.
    """
    with _locked():
        store = _read_store()
        data = store["profiles"].get(name)
        if not isinstance(data, dict) or not token or data.get("token") != token:
            return False
        data.pop("token", None)
        data.pop("token_source", None)
        _write_store(store)
        return True
