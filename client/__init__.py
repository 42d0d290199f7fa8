"""The Python client of the ctxsearch HTTP API: httpx and the API's models, nothing heavier."""

from ctxsearch.client.client import (
    AsyncClient,
    BadRequest,
    Client,
    ConnectionFailed,
    CtxsearchError,
    NotFound,
    ServerError,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "ConnectionFailed",
    "CtxsearchError",
    "NotFound",
    "ServerError",
    "Unavailable",
]
