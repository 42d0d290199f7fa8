"""Error answers: one JSON shape (`{"error": ...}`), a 4xx that names the field for bad
input, 503 with Retry-After while the database is down — never a traceback."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ctxsearch.auth import Forbidden
from ctxsearch.service.admission import Overloaded
from ctxsearch.service.facade import NotFound
from ctxsearch.service.paging import InvalidCursor
from ctxsearch.store.db import DatabaseUnavailable, DiskFull, MissingExtension
from ctxsearch.validation import validation_message, validation_status


class ErrorOut(BaseModel):
    error: str
    detail: list[dict] | None = None


_ERRORS = {
    400: "The body could not be read as JSON.",
    401: "Missing or unknown API key (only when CTXSEARCH_API_KEYS is set).",
    403: "The API key may not use this project.",
    408: "The request body stalled (nothing arrived for body_timeout_s).",
    413: "Too large: the body, the batch, or a field; the message names the limit.",
    422: "Invalid input; the message names the field.",
    429: "Rate limit exceeded, or too many failed authentications; retry after Retry-After seconds.",
    503: "The database is unavailable, or the service is busy; retry after Retry-After seconds.",
    507: "The database's disk is full: nothing was stored.",
}
ERROR_RESPONSES: dict[int | str, dict] = {code: {"model": ErrorOut, "description": d} for code, d in _ERRORS.items()}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse(
            status_code=validation_status(errors), content={"error": validation_message(errors), "detail": clean}
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        message = str(exc.detail)
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = "body: not valid JSON (or not UTF-8)"
        return _error(exc.status_code, message, exc.headers)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return _error(403, str(exc))

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable):
        return _error(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(DiskFull)
    async def _disk_full(request: Request, exc: DiskFull):
        return _error(507, str(exc))

    @app.exception_handler(psycopg.errors.DeadlockDetected)
    @app.exception_handler(psycopg.errors.SerializationFailure)
    async def _lost_lock(request: Request, exc: psycopg.OperationalError):
        # A deadlock victim or a serialization failure: nothing of it was stored; the server is up.
        return _error(503, "database busy: the request lost a lock conflict; retry it", {"Retry-After": "1"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_error(request: Request, exc: psycopg.OperationalError):
        return _error(503, "database unavailable", {"Retry-After": "5"})

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: psycopg.DataError):
        # A value PostgreSQL cannot store that validation let through: still the caller's input.
        detail = (str(exc).strip().splitlines() or ["invalid value"])[0]
        return _error(422, f"invalid value: {detail}")

    @app.exception_handler(MissingExtension)
    async def _no_vector(request: Request, exc: MissingExtension):
        return _error(503, str(exc))

    @app.exception_handler(InvalidCursor)
    async def _bad_cursor(request: Request, exc: InvalidCursor):
        return _error(400, str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))
