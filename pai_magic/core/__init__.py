"""The core every face calls: no IPython, no ipywidgets, no tornado imports here.

Submodules are imported on demand so that ``%load_ext pai_magic`` stays fast.
"""
from pai_magic.core.errors import (  # noqa: F401  (the error hierarchy is the core's API)
    AuthError,
    ConflictError,
    ForbiddenError,
    HostKeyError,
    InvalidInputError,
    MountError,
    NotFoundError,
    PaiError,
    PaiTimeoutError,
    RateLimitedError,
    ServerError,
    TransferError,
    UnreachableError,
)
