"""Every error leaves the service as ``{"code": ..., "message": ...}``.

``AppError`` is what the routes raise; the handlers installed by ``install_error_handlers`` map
it, FastAPI's validation errors, Starlette's HTTP errors, an unreachable database and any other
exception (500, generic message, logged) to that body. ``BodySizeLimit`` answers 413 before a
too-large body reaches the application.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("api")

# The code of an error that has nothing more specific to say than its status.
CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}
MAX_ERRORS_IN_MESSAGE = 3
MAX_INPUT_CHARS = 40


class AppError(Exception):
    """An error with its HTTP status, machine-readable ``code`` and human ``message``."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def not_found(what: str) -> AppError:
    """404 for an object that does not exist or belongs to another shop (the two look alike)."""
    return AppError(404, "not_found", f"{what} not found")


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code, headers=headers)


def code_for_status(status_code: int) -> str:
    return CODES_BY_STATUS.get(status_code, "error" if status_code < 500 else "internal_error")


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, str]:
    """``(code, message)`` for FastAPI's validation errors; the message names field and value."""
    if any(error.get("type") == "json_invalid" for error in errors):
        error = next(error for error in errors if error.get("type") == "json_invalid")
        reason = (error.get("ctx") or {}).get("error", "malformed")
        position = error.get("loc", ("body", "?"))[-1]
        return "invalid_json", f"request body is not valid JSON: {reason} (at position {position})"
    parts = []
    for error in errors[:MAX_ERRORS_IN_MESSAGE]:
        location = ".".join(str(part) for part in error.get("loc", ())) or "request"
        part = f"{location}: {error.get('msg', 'invalid')}"
        if error.get("type") not in {"missing", "extra_forbidden"} and "input" in error:
            shown = repr(error["input"])
            if len(shown) > MAX_INPUT_CHARS:
                shown = shown[: MAX_INPUT_CHARS - 3] + "..."
            part += f", got {shown}"
        parts.append(part)
    if len(errors) > MAX_ERRORS_IN_MESSAGE:
        parts.append(f"and {len(errors) - MAX_ERRORS_IN_MESSAGE} more")
    return "validation_error", "; ".join(parts)


async def _on_app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, code_for_status(exc.status_code), message, exc.headers)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message = describe_validation_errors(exc.errors())
    return error_response(422, code, message)


async def _on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable: %s", exc)
    return error_response(
        503,
        "database_unavailable",
        "the database is busy or unreachable; retry shortly",
        {"Retry-After": "1"},
    )


async def _on_unhandled(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` a ``{"code", "message"}`` body."""
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unhandled)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` with ``body``, already read, as its first message."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_body_bytes`` gets 413 ``payload_too_large``.

    A declared ``Content-Length`` is checked before reading; otherwise (chunked uploads) the body
    is read up to the limit and replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, "bad_request", "Content-Length is not a number")(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return

        chunks: list[bytes] = []
        n_bytes = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            n_bytes += len(chunk)
            if n_bytes > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"request body is larger than {self.max_body_bytes} bytes",
            {"Connection": "close"},
        )
        await response(scope, receive, send)
