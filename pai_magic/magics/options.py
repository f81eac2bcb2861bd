"""The notebook's defaults: ``%config PaiMagics.image = '...'`` (or ``c.PaiMagics.image`` in an
IPython config file).

The traits live here, below the magics, so that the session (which every magic uses) reads
them without importing the job magics: ``PaiMagics`` inherits them, and a session with no
registered ``PaiMagics`` (``pai_magic.job(...)`` before ``%load_ext``) uses ``PaiOptions()``.
"""
from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from pai_magic.magics.args import parse_memory


class PaiOptions(Configurable):
    """The options every pai magic reads through ``get_session(shell).options()``."""

    profile = Unicode(None, allow_none=True,
                      help="Profile (cluster) to use; default: the active one of the profile file.").tag(config=True)
    image = Unicode("ubuntu:22.04", help="Docker image of jobs built from cell commands.").tag(config=True)
    virtual_cluster = Unicode(None, allow_none=True,
                              help="Virtual cluster (queue); default: the profile's.").tag(config=True)
    gpu = Int(None, allow_none=True, help="GPUs per instance.").tag(config=True)
    cpu = Int(None, allow_none=True, help="CPUs per instance.").tag(config=True)
    memory = Unicode(None, allow_none=True, help="Memory per instance: 8G, 512M, 16384 (MB).").tag(config=True)
    wait = Bool(False, help="%%pai_job blocks until the job ends (else: returns at once).").tag(config=True)
    poll_interval = Float(2.0, help="Seconds between two status polls (one list request each).").tag(config=True)
    display = Enum(["auto", "html", "text"], "auto",
                   help="Status display: auto (HTML in Jupyter, text in a terminal), html or text.").tag(config=True)
    follow_interval = Float(1.0, help="Seconds between two log reads of %pai_logs --follow.").tag(config=True)
    request_timeout = Float(30.0, help="Seconds a magic waits for the cluster's answer to one request (retries "
                                       "included) before saying it did not answer.").tag(config=True)

    @validate("memory")
    def _check_memory(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None:
            try:
                parse_memory(value)
            except UsageError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("gpu", "cpu")
    def _check_count(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 0:
            raise TraitError(f"PaiMagics.{proposal['trait'].name} must be >= 0.")
        return value

    @validate("request_timeout")
    def _check_request_timeout(self, proposal: Any) -> Any:
        from pai_magic.core.deadline import check_timeout
        from pai_magic.core.errors import PaiError

        try:
            return check_timeout(proposal["value"], "PaiMagics.request_timeout")
        except PaiError as exc:
            raise TraitError(str(exc)) from None

    @validate("poll_interval", "follow_interval")
    def _check_interval(self, proposal: Any) -> Any:
        value = proposal["value"]
        if not 0.05 <= value <= 600:
            raise TraitError(f"PaiMagics.{proposal['trait'].name} must be between 0.05 and 600 seconds.")
        return value
