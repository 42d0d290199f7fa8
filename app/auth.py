"""Who is calling and which projects they may use: API keys, principals, project checks.

Shared by the HTTP routes, the MCP tools and the CLI; the HTTP middleware that reads the
bearer key lives in `ctxsearch.http.security`.
"""

from __future__ import annotations

import hashlib
import hmac
from contextvars import ContextVar
from dataclasses import dataclass

ALL_PROJECTS = "*"


class Forbidden(PermissionError):
    """The caller's key may not use this project; answered with 403."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (by fingerprint, never the key itself) and its projects."""

    key_id: str | None  # None: no keys are configured
    projects: frozenset[str] | None  # None: every project

    def allows(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


ANONYMOUS = Principal(key_id=None, projects=None)
current_principal: ContextVar[Principal | None] = ContextVar("ctxsearch_principal", default=None)


# The label of a key in logs is a slow hash of it (PBKDF2, 100,000 rounds): from a logged
# key_id, guessing a short key costs 100,000 hashes a guess instead of one. The same key
# gets the same label in every process, so logs of several servers still line up.
_KEY_ID_SALT = b"ctxsearch key id"
_KEY_ID_ROUNDS = 100_000


def key_fingerprint(key: str) -> str:
    """A short, non-reversible label for logs and rate-limit buckets."""
    return hashlib.pbkdf2_hmac("sha256", key.encode(), _KEY_ID_SALT, _KEY_ID_ROUNDS)[:4].hex()


class KeyRing:
    """The configured keys, looked up in constant time (every key is compared, digests of equal length)."""

    def __init__(self, keys: dict[str, list[str]]):
        self._entries = [
            (
                hashlib.sha256(key.encode()).digest(),
                Principal(
                    key_id=key_fingerprint(key), projects=None if ALL_PROJECTS in projects else frozenset(projects)
                ),
            )
            for key, projects in keys.items()
        ]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for key_digest, principal in self._entries:
            if hmac.compare_digest(digest, key_digest):
                found = principal
        return found


def check_project(project_id: str, principal: Principal | None = None) -> None:
    """Raise Forbidden unless the current caller may use project_id.

    MCP tools call this with each project they touch; outside a request (CLI, stdio
    MCP) there is no principal and everything is allowed.
    """
    principal = principal or current_principal.get() or ANONYMOUS
    if not principal.allows(project_id):
        raise Forbidden(f"this API key may not use project {project_id!r}")
