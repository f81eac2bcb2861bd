"""Passwords and tokens of the embedded backend, shaped like the real rest-server's.

Tokens are HS256 JWTs with the payload the rest-server signs (``username``,
``application``, ``jobSpecific``, ``encodedFrameworkName``, ``iat``, ``exp``), so a client
that decodes a token (to show its expiry, say) behaves the same against a cluster. A
token is valid only while it is also listed in the store: logout and revoke delete it
there, exactly as the real server deletes it from its Kubernetes secret.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from typing import Any, AsyncIterator

USER_TOKEN_SECONDS = 7 * 24 * 3600  # the rest-server's default, whatever `expiration` says

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2 ** 14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks JWTs with the backend's secret (kept 0600 in the data dir)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"

    def sign(self, username: str, application: bool = False) -> tuple[str, float | None]:
        now = int(time.time())
        payload: dict[str, Any] = {"username": username, "application": application, "jobSpecific": False,
                                   "encodedFrameworkName": "", "iat": now}
        expires: float | None = None
        if not application:
            expires = now + USER_TOKEN_SECONDS
            payload["exp"] = int(expires)
        # a random id keeps two tokens signed in the same second distinct
        payload["jti"] = secrets.token_hex(8)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        return f"{header}.{body}.{sig}", expires

    def verify(self, token: str) -> dict[str, Any] | None:
        """The payload of a well-signed, unexpired token; None otherwise (never raises)."""
        try:
            header, body, sig = token.split(".")
            want = _b64(hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(want, sig):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, TypeError, json.JSONDecodeError):
            return None
        if not isinstance(payload, dict) or not payload.get("username"):
            return None
        exp = payload.get("exp")
        if exp is not None and float(exp) < time.time():
            return None
        return payload

    def mac(self, text: str) -> str:
        """A short signature for self-authorizing URLs (log content links)."""
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:32]


class LoginThrottle:
    """Slows down password guessing: attempts for one user name run one at a time, and after
    FREE failures each one waits BASE * 2**(failures - FREE) seconds (at most CAP) first.

    A success resets the count; failures older than FORGET seconds are forgotten, so the
    real user is never locked out for long. The counts are shared by the executor threads
    that check passwords (``failed``/``succeeded``) and the event loop (``turn``/``delay``).
    """

    FREE = 3
    BASE = 0.5
    CAP = 10.0
    FORGET = 900.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    def delay(self, username: object) -> float:
        if not isinstance(username, str):
            return 0.0
        with self._lock:
            count, last = self._failures.get(username, (0, 0.0))
        if count < self.FREE or time.monotonic() - last > self.FORGET:
            return 0.0
        return min(self.CAP, self.BASE * 2 ** (count - self.FREE))

    def failed(self, username: str) -> None:
        with self._lock:
            count, last = self._failures.get(username, (0, 0.0))
            if time.monotonic() - last > self.FORGET:
                count = 0
            self._failures[username] = (count + 1, time.monotonic())
            if len(self._failures) > 10000:  # many names sprayed: keep the most recent half
                keep = sorted(self._failures.items(), key=lambda kv: kv[1][1])[-5000:]
                self._failures = dict(keep)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)

    @contextlib.asynccontextmanager
    async def turn(self, username: object) -> AsyncIterator[None]:
        """Hold the one login slot of ``username`` (on the event loop)."""
        if not isinstance(username, str) or not username:
            yield
            return
        lock, users = self._turns.get(username, (asyncio.Lock(), 0))
        self._turns[username] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[username]
            if users <= 1:
                del self._turns[username]
            else:
                self._turns[username] = (lock, users - 1)
