"""SSH into job containers: keys, host keys per job, commands, file transfer, SSH info.

Modules: ``keys`` (find or generate the user's key), ``known_hosts`` (pai_magic's own file,
keyed by job and task), ``connect`` (bounded connect + auth), ``exec`` (streamed commands),
``transfer`` (verified, atomically renamed SFTP), ``sftp_stream`` (the fast data path),
``info`` (the portal's SSH Info text), ``openssh`` (stock ssh argv), ``tasks`` (all of it by
job name, what the faces call). Import the submodules; nothing heavy is imported here.
"""
from __future__ import annotations

from pai_magic.core.ssh.known_hosts import forget_host_key, forget_job_keys  # noqa: F401
