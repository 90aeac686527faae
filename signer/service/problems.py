"""RFC 9457 problem documents for every refusal; a 5xx only when a dependency is down.

Each document carries the request's id (``request_id``, also the ``X-Request-Id`` header), and
each is recorded in the audit log under that id, so a user's error message finds its line.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from signer.errors import SignerError, Unavailable
from signer.service import audit

MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
log = logging.getLogger("signer.service")


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
            check: str = "http") -> JSONResponse:
    """The refusal's document; ``check`` names, in the audit line, what refused it."""
    body: dict[str, str | int] = {"type": "about:blank", "title": title, "status": status,
                                  "detail": detail}
    request_id = audit.current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    audit.refused(check, status, title, detail)
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER_SECONDS, **(headers or {})}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(SignerError)
    async def signer_error(_request: Request, exc: SignerError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.explain(), check=audit.check_name(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {err.get('msg')}")
        return problem(422, "Invalid request", "The request does not match the API schema: "
                       + "; ".join(parts) + ". See /openapi.json for the expected shape.",
                       check="schema")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), _http_detail(exc.status_code),
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def unstorable(_request: Request, exc: DataError) -> JSONResponse:
        return problem(400, "Bad request", "The request holds a value the store cannot hold "
                       "(such as a NUL character or an out-of-range number). Send printable "
                       "text and numbers in range.", check="store")

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        err = Unavailable("The database is unavailable; nothing was stored.",
                          "Retry in a few seconds.")
        return problem(err.status, err.title, err.explain(), check="database")


def _http_detail(status: int) -> str:
    if status == 404:
        return "No such resource. See /openapi.json for the API's paths."
    if status == 405:
        return "This path does not accept that method. See /openapi.json."
    return "The request was refused."
