"""pai_magic.local: an embedded OpenPAI backend, so everything works on one machine.

A real tornado HTTP server on loopback answers the OpenPAI v1.8 REST API under
``<url>/rest-server/api/v2`` with the rest-server's status codes and ``{code, message}``
errors, and runs each job's task instances as local processes (``bash`` running the
rendered commands, one process group per task, in ``<data dir>/jobs/<user>~<job>/<role>-<i>``).

What a task sees, and what differs from a cluster:

- The ``PAI_*`` environment of the OpenPAI runtime: ``PAI_JOB_NAME`` (``user~job``),
  ``PAI_USER_NAME``, ``PAI_CURRENT_TASK_ROLE_NAME``, ``PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX``,
  ``PAI_TASK_INDEX``, ``PAI_TASK_ROLE_LIST``, ``PAI_TASK_ROLE_COUNT``,
  ``PAI_TASK_ROLE_TASK_COUNT_<role>``, ``PAI_RESOURCE_<role>``, ``PAI_CONTAINER_HOST_IP``,
  ``PAI_CONTAINER_HOST_PORT``, ``PAI_CONTAINER_SSH_PORT``, ``PAI_CONTAINER_HOST_PORT_LIST``
  (``ssh:1;http:2;``), ``PAI_CONTAINER_HOST_<port>_PORT_LIST``, ``PAI_PORT_LIST_<role>_<i>_<port>``,
  ``PAI_HOST_IP_<role>_<i>``, ``PAI_TASK_ROLE_<role>_HOST_LIST``, ``PAI_TASK_ROLE_INSTANCES``,
  ``PAI_WORK_DIR`` (the task's working directory) and ``PAI_VIRTUAL_CLUSTER``. Ports are free
  loopback ports, reported as strings in ``containerPorts``; ``containerIp`` is 127.0.0.1.
- Storages are folders ``<data dir>/storages/<name>`` (``default`` always exists; any folder
  created there is a storage, served as type nfs, server 127.0.0.1). A job's
  ``extras.storages`` (``[]`` = the default storage) makes each one reachable as
  ``$PAI_STORAGE_<NAME>_PATH`` (name upper-cased, other characters as ``_``), and as a symlink
  at its ``mountPath`` (default ``/mnt/<name>``) when that path is free; otherwise an event
  says why not.
- ``dockerImage`` is recorded, not run (no container engine): the job's diagnostics and
  events say so. GPUs are never given; a job asking for them still runs and its diagnostics
  say no GPU was given.
- Jobs with the ``ssh`` runtime plugin get an SSH server per task on ``containerPorts.ssh``
  (pai_magic.local.task_ssh), accepting the user's profile keys and the job's ``userssh`` key.
- ``PAI_LOCAL_TASK_UID`` marks each task's processes, so a restarted backend can end the
  orphans of a backend that was killed; such jobs come back FAILED with the diagnostic
  "the embedded backend stopped while the job ran".

Entry points: ``python -m pai_magic.local``, :func:`serve`, :func:`start_in_thread`,
:func:`find_running`, :func:`read_credentials`.
"""
from __future__ import annotations

from pai_magic.local.backend import read_credentials
from pai_magic.local.server import ServerHandle, default_data_dir, find_running, serve, start_in_thread

__all__ = ["serve", "start_in_thread", "find_running", "read_credentials", "default_data_dir", "ServerHandle"]
