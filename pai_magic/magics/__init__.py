"""The notebook face of pai_magic: IPython magics, registered by ``%load_ext pai_magic``.

Adding magics for another area (ssh, registry, storage ...)
-------------------------------------------------------------
1. Write ``pai_magic/magics/<area>.py`` with one ``@magics_class`` class deriving from
   ``IPython.core.magic.Magics`` (it is a traitlets Configurable: ``%config <Class>.x``).
2. Add ``("pai_magic.magics.<area>", "<Class>")`` to :data:`MAGICS` below. Modules are
   imported at ``%load_ext``: import nothing heavy at module level (no requests, paramiko,
   yaml, ipywidgets, jsonschema); import the core inside the magic bodies.
3. Use the shared helpers so every magic behaves the same:

   - ``@lazy_magic_arguments()`` (:mod:`.args`) in place of IPython's ``@magic_arguments()``
     (same ``@argument`` lines): the parser is built on first use, not at ``%load_ext``
     (IPython's builds and formats every parser at import: over half the load time), and
     ``%magic?`` still lists every option;
   - ``parse_line(self.my_magic, line)`` (:mod:`.args`): argument parsing that
     raises a one-line ``UsageError`` (never ``SystemExit``); ``parse_task``,
     ``parse_storage``, ``parse_memory``, ``check_var`` for common values;
   - ``@friendly`` (under ``@line_magic``) or ``with usage_errors(url=..., job=...)``
     (:mod:`.errors`): core ``PaiError`` -> one-line ``UsageError`` in the notebook's words;
   - ``get_session(self.shell)`` (:mod:`.session`): ``.client()`` for the current profile,
     ``.profile()``, ``.options()`` (the ``PaiMagics`` defaults), ``.board()`` (the job watcher);
   - :mod:`.render`: ``View`` (text + HTML), ``Table``, ``kv_view`` for output that is
     HTML in a notebook and text in a terminal;
   - :mod:`.status`: ``register_status_extra(func)`` adds lines under a job's live status
     (e.g. SSH info once a task runs); ``publish(shell, obj, display_id=...)``.

A module listed here that fails to import is skipped with a one-line warning, so a
half-installed area never blocks the others.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

#: (module, class) of every Magics class ``%load_ext pai_magic`` registers, in order.
MAGICS: list[tuple[str, str]] = [
    ("pai_magic.magics.jobs", "PaiMagics"),
    ("pai_magic.magics.login", "LoginMagics"),
    ("pai_magic.magics.storage", "StorageMagics"),
    ("pai_magic.magics.help", "HelpMagics"),
    ("pai_magic.magics.registry", "RegistryMagics"),
    ("pai_magic.magics.ssh", "SshMagics"),
    ("pai_magic.magics.doctor", "DoctorMagics"),
    ("pai_magic.magics.kernel", "KernelMagics"),
    ("pai_magic.magics.notebook", "NotebookMagics"),
]


def magics_classes() -> list[type]:
    """Import and return the listed classes (skipping, with a warning, one that fails)."""
    classes = []
    for module_name, class_name in MAGICS:
        try:
            module = importlib.import_module(module_name)
            classes.append(getattr(module, class_name))
        except Exception as exc:  # noqa: BLE001 - one broken area must not block the rest
            print(f"pai_magic: skipped {module_name}.{class_name} ({type(exc).__name__}: {exc})", file=sys.stderr)
    return classes


def register(ipython: Any) -> None:
    """Register every Magics class with ``ipython`` (what ``%load_ext pai_magic`` does)."""
    from pai_magic.magics.session import get_session

    from pai_magic.magics.errors import install_one_line_errors

    session = get_session(ipython)
    for cls in magics_classes():
        ipython.register_magics(cls)
    install_one_line_errors(ipython)
    events = getattr(ipython, "events", None)
    if events is not None:
        try:
            events.register("pre_run_cell", session.on_pre_run_cell)
        except ValueError:  # already registered (a second load in the same shell)
            pass


def unregister(ipython: Any) -> None:
    """Undo :func:`register`: stop the watcher, drop the magics and the configurables."""
    from pai_magic.magics.errors import remove_one_line_errors
    from pai_magic.magics.session import drop_session, get_session

    remove_one_line_errors(ipython)
    session = get_session(ipython)
    events = getattr(ipython, "events", None)
    if events is not None:
        try:
            events.unregister("pre_run_cell", session.on_pre_run_cell)
        except ValueError:
            pass
    manager = getattr(ipython, "magics_manager", None)
    names = {cls_name for _, cls_name in MAGICS}
    if manager is not None:
        for kind in ("line", "cell"):
            table = manager.magics.get(kind, {})
            for magic_name, func in list(table.items()):
                owner = getattr(func, "__self__", None)
                if owner is not None and type(owner).__name__ in names:
                    del table[magic_name]
        for cls_name in names:
            instance = manager.registry.pop(cls_name, None)
            if instance is not None and instance in getattr(ipython, "configurables", []):
                ipython.configurables.remove(instance)
    drop_session(ipython)


from pai_magic.magics.args import (  # noqa: E402
    check_var,
    lazy_magic_arguments,
    parse_line,
    parse_memory,
    parse_storage,
    parse_task,
)
from pai_magic.magics.errors import friendly, friendly_message, usage_errors  # noqa: E402
from pai_magic.magics.session import get_session  # noqa: E402

__all__ = ["MAGICS", "register", "unregister", "magics_classes", "lazy_magic_arguments", "parse_line", "parse_memory",
           "parse_storage", "parse_task", "check_var", "friendly", "friendly_message", "usage_errors",
           "get_session"]
