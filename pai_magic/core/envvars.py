"""Every environment variable pai_magic reads, in one place.

docs/CONFIGURATION.md is generated from this list (scripts/gen_config_reference.py), and
tests/unit/test_config_reference.py checks that the code reads no variable missing here and
that every one listed here is read somewhere, so the list cannot drift from the code.
Variables whose name the user chooses (``--password-env VAR``, ``--passphrase-env VAR``)
are options of the commands that take them, not entries here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    name: str
    meaning: str
    group: str = "pai_magic"


ENV_VARS: tuple[EnvVar, ...] = (
    # a cluster without a profile file (CI, a container): the "env" profile
    EnvVar("PAI_URL", "Cluster URL; with PAI_TOKEN (and PAI_USER) it makes the `env` profile, used when no "
                      "profile is named."),
    EnvVar("PAI_USER", "User name of the `env` profile."),
    EnvVar("PAI_TOKEN", "Token of the `env` profile (a secret: never printed)."),
    EnvVar("PAI_VC", "Virtual cluster of the `env` profile (default: `default`)."),
    EnvVar("PAI_STORAGE", "Default storage of the `env` profile: `NAME` or `NAME:/mount/path`."),
    EnvVar("PAI_PROFILE", "Name of the profile to use when none is given (overrides the active one)."),
    EnvVar("PAI_REGISTRY", "Docker registry URL (scheme explicit: http://HOST:PORT) when the profile has none."),
    EnvVar("PAI_REGISTRY_USER", "Registry user name that goes with PAI_REGISTRY or --registry."),
    EnvVar("PAI_REGISTRY_PASSWORD", "Registry password that goes with PAI_REGISTRY or --registry (a secret)."),
    # where pai_magic keeps its files
    EnvVar("PAI_MAGIC_CONFIG_DIR", "Folder of the profile file, SSH keys and known_hosts "
                                   "(default: $XDG_CONFIG_HOME/pai_magic or ~/.config/pai_magic)."),
    EnvVar("PAI_MAGIC_DATA_DIR", "Folder of data pai_magic keeps: the embedded backend's state, mount records "
                                 "(default: $XDG_DATA_HOME/pai_magic or ~/.local/share/pai_magic)."),
    EnvVar("PAI_MAGIC_DEBUG", "Set (e.g. to 1): the CLI shows the traceback of an unexpected error instead of one line."),
    EnvVar("PAI_MAGIC_REQUEST_TIMEOUT", "Seconds any command waits for the cluster's answer to one request, retries "
                                        "included (default 30; `--request-timeout` and `%config "
                                        "PaiMagics.request_timeout` override it)."),
    EnvVar("PAI_MAGIC_SHARED_POLL", "`off`: each kernel, sidebar and watch lists jobs on its own instead of sharing "
                                    "one machine-wide job-list poll (default on)."),
    # the embedded backend
    EnvVar("PAI_LOCAL_JOB_USER", "Who the embedded backend's jobs run as when it is root: `per-user` (default), an "
                                 "account name, or `root` (no isolation); also `--job-user`.", "embedded backend"),
    EnvVar("PAI_LOCAL_RATE_LIMIT", "`on` (or `API,LIST,SUBMIT` numbers): the embedded backend enforces OpenPAI's rate "
                                   "limits (default off); also `--rate-limit`.", "embedded backend"),
    # set by OpenPAI in a task, read by what pai_magic runs there
    EnvVar("PAI_CONTAINER_HOST_kernel_PORT_LIST", "Set by OpenPAI in a kernel job's task: the ports declared for the "
                                                  "kernel; the kernel supervisor binds them.", "in a task"),
    # standard variables pai_magic honours
    EnvVar("XDG_CONFIG_HOME", "Base of the default PAI_MAGIC_CONFIG_DIR.", "standard"),
    EnvVar("XDG_DATA_HOME", "Base of the default PAI_MAGIC_DATA_DIR.", "standard"),
    EnvVar("DOCKER_CONFIG", "Folder of Docker's config.json, read for registry credentials (default ~/.docker).",
           "standard"),
    EnvVar("HOME", "Default HOME of commands run over SSH in an embedded-backend task.", "standard"),
    EnvVar("PATH", "Default PATH of commands run over SSH in an embedded-backend task.", "standard"),
    EnvVar("SHELL", "The embedded backend's task SSH server starts this shell for interactive sessions.", "standard"),
)


def env_var_names() -> list[str]:
    return [v.name for v in ENV_VARS]
