"""What the server extension's handlers call: one method per endpoint, JSON-ready answers.

``PaiBackend`` is the seam the ExtensionApp's ``backend_class`` trait swaps; ``CoreBackend``
is the real one and is a thin layer over ``pai_magic.core``: it picks the profile, keeps one
``PaiClient`` per (cluster, user, token), and shapes the core's dataclasses into the JSON of
``openapi.yaml``. Methods block (HTTP, SSH); the handlers run them on a thread pool.
The token never leaves this module: answers carry the profile name, URL and user only.
"""
from __future__ import annotations

from typing import Any

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from pai_magic.core.client import ClientForProfile
from pai_magic.core.errors import AuthError, PaiError
from pai_magic.server import serialize


class PaiBackend(LoggingConfigurable):
    """The API the handlers need. Subclass it (or ``CoreBackend``) to serve another way."""

    def status(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.status")

    def login(self, *, url: str, user: str, password: str | None, token: str | None,
              profile: str | None) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.login")

    def start_local(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.start_local")

    def list_jobs(self, *, state: str | None, limit: int | None, offset: int = 0, keyword: str | None = None,
                  user: str | None = "", vc: str | None = None) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.list_jobs")

    def job_config(self, name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.job_config")

    def protocol(self, kind: str, payload: Any) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.protocol")

    def profiles(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.profiles")

    def select_profile(self, name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.select_profile")

    def logout(self, *, revoke: bool = False) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.logout")

    def images(self, pattern: str | None) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.images")

    def image_tags(self, repository: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.image_tags")

    def storages(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.storages")

    def get_job(self, name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.get_job")

    def submit(self, kind: str, payload: Any) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.submit")

    def stop(self, name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.stop")

    def logs(self, name: str, *, role: str | None, index: int, stream: str, tail: int) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.logs")

    def ssh_info(self, name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.ssh_info")

    def close(self) -> None:
        """Release connections when the server stops."""


#: What a log manager's tail mode returns (OpenPAI's log-manager and the embedded backend: 16 KiB).
TAIL_MODE_BYTES = 16 * 1024

NOT_LOGGED_IN = "Not logged in: enter the cluster URL, user and password below, or start the local backend."


def _status_of(profile, message: str | None = None) -> dict[str, Any]:
    logged_in = bool(profile is not None and profile.token)
    if profile is not None and not logged_in and message is None:
        message = f"Not logged in to {profile.url}: log in below."
    return {
        "loggedIn": logged_in,
        "profile": profile.name if profile is not None else None,
        "url": profile.url if profile is not None else None,
        "user": (profile.user or None) if profile is not None else None,
        "virtualCluster": profile.virtual_cluster if profile is not None else None,
        "message": message,
    }


class CoreBackend(PaiBackend):
    """The real backend: the core, in the Jupyter server process (never in a kernel)."""

    profile = Unicode(None, allow_none=True, config=True,
                      help="Profile to use; default: PAI_PROFILE, PAI_URL/PAI_TOKEN, then the active one.")
    local_data_dir = Unicode(None, allow_none=True, config=True,
                             help="Data folder of the embedded backend that POST /local starts or finds.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clients = ClientForProfile()
        self._session_profile: str | None = None  # set by a login through this server
        self._registry_client: Any = None  # one per registry, so its digest cache is kept
        self._registry_key: tuple[Any, ...] | None = None

    # ---- profile and client ---------------------------------------------------------------

    def _profile(self):
        from pai_magic.core.profiles import load_profile

        return load_profile(self.profile or self._session_profile)

    def _client(self):
        """The client for the current profile; re-read each call, so a CLI login is seen at once."""
        prof = self._profile()
        if not prof.token:
            raise AuthError(f"Not logged in to {prof.url}: log in from the sidebar or run `pai-magic login`.")
        return self._clients.get(prof)

    def close(self) -> None:
        from pai_magic.local.connect import stop_started

        self._clients.close()
        if self._registry_client is not None:
            self._registry_client.close()
        stop_started()

    # ---- endpoints ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        from pai_magic.core.profiles import NO_PROFILE_HINT

        try:
            prof = self._profile()
        except PaiError as exc:
            if str(exc) == NO_PROFILE_HINT:
                # the core's hint names the CLI and the magic; the sidebar's login form is right here
                return _status_of(None, NOT_LOGGED_IN)
            return _status_of(None, str(exc))
        return _status_of(prof)

    def login(self, *, url: str, user: str, password: str | None, token: str | None,
              profile: str | None) -> dict[str, Any]:
        from pai_magic.core import auth

        name = profile or self.profile or None
        if password is not None:
            prof = auth.login_with_password(url, user, password, profile_name=name)
        else:
            prof, _status = auth.login_with_token(url, token or "", user=user or None, profile_name=name)
        self._session_profile = prof.name
        return _status_of(prof)

    def start_local(self) -> dict[str, Any]:
        from pai_magic.local.connect import connect_local

        prof = connect_local(self.local_data_dir or None, profile_name=self.profile or None).profile
        self._session_profile = prof.name
        return _status_of(prof)

    def list_jobs(self, *, state: str | None, limit: int | None, offset: int = 0, keyword: str | None = None,
                  user: str | None = "", vc: str | None = None) -> dict[str, Any]:
        """One page of jobs; ``user`` "" means the logged-in user's, None everyone's."""
        client = self._client()
        if state is None and not offset and not keyword and not vc and user == "":
            # the sidebar's default poll: the machine-wide shared list (core.polling)
            from pai_magic.core.polling import shared_list

            lst = shared_list(client).get(limit=limit or 20)
            return {"jobs": [serialize.job_row(j) for j in lst.items[:limit]], "total": lst.total,
                    "offset": 0, "limit": limit}
        username = (client.user or None) if user == "" else user
        page = client.list_jobs(username=username, state=state, vc=vc, keyword=keyword,
                                offset=offset, limit=limit)
        return {"jobs": [serialize.job_row(j) for j in page.items], "total": page.total,
                "offset": offset, "limit": limit}

    def get_job(self, name: str) -> dict[str, Any]:
        from pai_magic.core.cli_command import task_shell_commands

        client = self._client()
        detail = client.get_job(name)
        return serialize.job_detail(detail, task_shell_commands(detail, client.profile.name))

    def submit(self, kind: str, payload: Any) -> dict[str, Any]:
        from pai_magic.server.submit import protocol_from_request
        from pai_magic.core.jobs import submit_job

        client = self._client()
        job = protocol_from_request(kind, payload, client.profile)
        name = submit_job(client, job)
        return {"name": name, "user": client.user}

    def job_config(self, name: str) -> dict[str, Any]:
        """The job's protocol as YAML (secrets masked) and, when the form can hold it, as a spec."""
        from pai_magic.core.protocol import dump_protocol
        from pai_magic.core.protocol.build import mask_secrets

        client = self._client()
        job = mask_secrets(client.job_config(name))
        spec, why = serialize.form_spec(job)
        user, _, bare = name.rpartition("~")
        return {"name": bare, "user": user or client.user, "yaml": dump_protocol(job),
                "spec": spec, "specMessage": why}

    def protocol(self, kind: str, payload: Any) -> dict[str, Any]:
        """Form -> YAML (export) or YAML -> form (import), without submitting anything."""
        from pai_magic.core.protocol import dump_protocol, parse_protocol
        from pai_magic.core.protocol.build import mask_secrets
        from pai_magic.core.protocol.validate import validate_protocol
        from pai_magic.server.submit import protocol_from_request

        if kind == "spec":
            built = protocol_from_request("spec", payload, self._profile())
            job = built if isinstance(built, dict) else parse_protocol(built)
        else:
            job = validate_protocol(parse_protocol(payload))
        spec, why = serialize.form_spec(job)
        return {"yaml": dump_protocol(mask_secrets(job)), "spec": spec, "specMessage": why}

    def profiles(self) -> dict[str, Any]:
        from pai_magic.core.profiles import active_profile_name, list_profiles

        active = self._session_profile or self.profile or active_profile_name()
        return {"active": active,
                "profiles": [{"name": p.name, "url": p.url, "user": p.user or None, "loggedIn": bool(p.token)}
                             for p in list_profiles()]}

    def select_profile(self, name: str) -> dict[str, Any]:
        from pai_magic.core.profiles import select_profile

        prof = select_profile(name)
        self._session_profile = prof.name
        return _status_of(prof)

    def logout(self, *, revoke: bool = False) -> dict[str, Any]:
        """Log out of the current profile (the core's rules: a password login's token is revoked
        on the cluster, a pasted one only with ``revoke``); URL and user stay for the next login."""
        from pai_magic.core.auth import logout

        result = logout(self.profile or self._session_profile, revoke=revoke)
        self._clients.close()
        return _status_of(self._profile(), f"{result.message} To go on, log in below.")

    def _registry(self):
        from pai_magic.core.registry.client import RegistryClient

        prof = None
        try:
            prof = self._profile()
        except PaiError:
            pass
        key = (getattr(prof, "registry_url", None), getattr(prof, "registry_user", None))
        if self._registry_client is None or self._registry_key != key:
            client = RegistryClient.from_profile(prof)
            if self._registry_client is not None:
                self._registry_client.close()
            self._registry_client, self._registry_key = client, key
        return self._registry_client

    def images(self, pattern: str | None) -> dict[str, Any]:
        reg = self._registry()
        listing = reg.list_images(pattern)
        return {"registry": reg.host, "repositories": [
            {"repository": item.repository, "tags": list(item.tags)} for item in listing]}

    def image_tags(self, repository: str) -> dict[str, Any]:
        from pai_magic.core.registry.details import image_details
        from pai_magic.core.registry.models import RepositoryTags

        reg = self._registry()
        reg.ref(repository)  # a bad name is a one-line 400, not a registry error
        listing = [RepositoryTags(repository, reg.tags(repository, missing_ok=False))]
        return {"registry": reg.host, "repository": repository,
                "tags": serialize.image_tags(reg.host, image_details(reg, listing))}

    def storages(self) -> dict[str, Any]:
        from pai_magic.core.storage.overview import storage_overview

        return {"storages": [serialize.storage_row(row) for row in storage_overview(self._client())]}

    def stop(self, name: str) -> dict[str, Any]:
        from pai_magic.core.stopping import stop_job

        client = self._client()
        # the core's stop: a notebook run saves and fetches what ran first; the next list (any
        # kernel's or sidebar's) shows STOPPING
        stop_job(client, name)
        detail = client.get_job(name)
        return {"name": detail.name, "user": detail.user, "state": detail.state}

    def logs(self, name: str, *, role: str | None, index: int, stream: str, tail: int) -> dict[str, Any]:
        client = self._client()
        detail = client.get_job(name)
        task = detail.task(role, index)
        # The sidebar polls this while a job runs: ask the log manager for its tail (the last
        # TAIL_MODE_BYTES) instead of downloading the whole log every tick, when that is enough.
        use_tail = tail <= TAIL_MODE_BYTES
        chunk = client.task_log_text(name, task.role, task.index, stream=stream, detail=detail, tail=use_tail)
        text = chunk.text
        truncated = len(text) > tail or (use_tail and len(text.encode()) >= TAIL_MODE_BYTES)
        return {"name": detail.name, "task": f"{task.role}/{task.index}", "stream": stream,
                "text": text[-tail:] if truncated else text, "truncated": truncated}

    def ssh_info(self, name: str) -> dict[str, Any]:
        from pai_magic.core.ssh.info import ssh_info

        info = ssh_info(self._client(), name)
        return {"name": info.job, "state": info.state, "hasSsh": info.has_ssh, "lines": info.lines,
                "text": info.text if info.has_ssh and info.endpoints else None,
                "message": info.message, "waiting": list(info.waiting),
                # the same lines, each with its task and kind, so the sidebar can say which
                # one needs the user's own key/agent ("portal") and which works as is ("key")
                "commands": info.commands}
